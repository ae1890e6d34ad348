// The /ws/ socket (docs/realtime.md): one per page, session-authenticated, reconnecting.
// Subscriptions are remembered and sent again after a reconnect; an execution topic resumes
// with `after` = the last seq this page saw, so nothing is missed and nothing repeats.

export class Socket {
  constructor() {
    this.topics = new Map(); // topic -> {onMessage, lastSeq, execution}
    this.listeners = new Set(); // frames that are not for a topic (chat, errors)
    this.statusListeners = new Set();
    this.queue = [];
    this.retry = 0;
    this.closed = false;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/`);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      this.setStatus("open");
      for (const [topic, sub] of this.topics) this.sendSubscribe(topic, sub);
      for (const message of this.queue.splice(0)) ws.send(JSON.stringify(message));
    };
    ws.onmessage = (e) => {
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      this.dispatch(frame);
    };
    ws.onclose = (e) => {
      this.setStatus("closed");
      if (this.closed) return;
      if (e.code === 4401) {
        window.location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname)}`);
        return;
      }
      const delay = Math.min(5000, 250 * 2 ** this.retry++);
      setTimeout(() => this.connect(), delay);
    };
  }

  setStatus(status) {
    this.status = status;
    for (const fn of this.statusListeners) fn(status);
  }

  dispatch(frame) {
    const sub = frame.topic && this.topics.get(frame.topic);
    if (sub) {
      if (frame.type === "event" && typeof frame.seq === "number" && sub.execution) {
        if (frame.seq <= sub.lastSeq) return; // already seen (a replay after a reconnect)
        sub.lastSeq = frame.seq;
      }
      sub.onMessage(frame);
      return;
    }
    for (const fn of this.listeners) fn(frame);
  }

  send(message) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    else this.queue.push(message);
  }

  sendSubscribe(topic, sub) {
    const message = { type: "subscribe", topic };
    if (sub.execution) message.after = sub.lastSeq;
    this.ws.send(JSON.stringify(message));
  }

  subscribe(topic, onMessage) {
    const sub = { onMessage, lastSeq: 0, execution: topic.startsWith("execution:") };
    this.topics.set(topic, sub);
    if (this.ws.readyState === WebSocket.OPEN) this.sendSubscribe(topic, sub);
    return () => this.unsubscribe(topic);
  }

  unsubscribe(topic) {
    if (!this.topics.delete(topic)) return;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "unsubscribe", topic }));
  }

  onFrame(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onStatus(fn) {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }
}

let shared = null;
export function socket() {
  if (!shared) shared = new Socket();
  return shared;
}
