// /chat/: conversations by title, their messages, a reply streamed over the socket
// (chat.send -> chat.token frames -> chat.done), providers and models from /api/providers/.
import { useCallback, useEffect, useRef, useState } from "react";
import { api, apiAll, errorText, uuid, words } from "./api.js";
import { socket } from "./socket.js";

function NewConversation({ providers, onCreated }) {
  const [title, setTitle] = useState("");
  const [provider, setProvider] = useState("ollama");
  const [model, setModel] = useState("");
  const [models, setModels] = useState([]);
  const [modelsError, setModelsError] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setModels([]);
    setModelsError(null);
    api(`/api/providers/${provider}/models/`)
      .then((list) => {
        const names = list.filter((m) => m.chat !== false).map((m) => m.name || m.id || m.model).filter(Boolean);
        setModels(names);
        setModel((current) => current || names[0] || "");
      })
      .catch((err) => setModelsError(errorText(err)));
  }, [provider]);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const conversation = await api("/api/conversations/", { method: "POST", body: { title, provider, model } });
      setTitle("");
      onCreated(conversation);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="new-conversation" onSubmit={submit}>
      <h2>New conversation</h2>
      <div className="field">
        <label htmlFor="conv-title">Title</label>
        <input id="conv-title" name="title" value={title} maxLength={200} onChange={(e) => setTitle(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor="conv-provider">Provider</label>
        <select id="conv-provider" name="provider" value={provider} onChange={(e) => { setProvider(e.target.value); setModel(""); }}>
          {(providers.length ? providers : [{ name: "ollama" }, { name: "groq" }]).map((p) => (
            <option key={p.name} value={p.name}>{p.name}{p.reachable === false ? " (down)" : ""}</option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="conv-model">Model</label>
        <input id="conv-model" name="model" list="conv-models" value={model} required maxLength={200} onChange={(e) => setModel(e.target.value)} />
        <datalist id="conv-models">{models.map((m) => <option key={m} value={m} />)}</datalist>
        {modelsError && <small className="error">{modelsError}</small>}
      </div>
      <button type="submit">Start</button>
      {error && <pre className="error" role="alert">{error}</pre>}
    </form>
  );
}

export default function ChatPage() {
  const [conversations, setConversations] = useState(null);
  const [providers, setProviders] = useState([]);
  const [current, setCurrent] = useState(null);
  const [messages, setMessages] = useState([]);
  const [pending, setPending] = useState(null); // the reply streaming now: {requestId, user, text}
  const [content, setContent] = useState("");
  const [error, setError] = useState(null);
  const pendingRef = useRef(null);
  pendingRef.current = pending;
  const listRef = useRef(null);

  const loadConversations = useCallback(() => apiAll("/api/conversations/").then(setConversations).catch((err) => setError(errorText(err))), []);
  useEffect(() => {
    loadConversations();
    api("/api/providers/").then(setProviders).catch(() => {});
  }, [loadConversations]);

  const loadMessages = useCallback(async (conversation) => {
    const page = await api(`/api/conversations/${conversation.id}/messages/`);
    setMessages(page.results);
  }, []);

  useEffect(() => {
    if (!current) return undefined;
    setMessages([]);
    setPending(null);
    loadMessages(current).catch((err) => setError(errorText(err)));
    const s = socket();
    const unsubscribe = s.subscribe(`conversation:${current.id}`, () => {});
    const off = s.onFrame((frame) => {
      if (frame.type === "chat.token" && frame.conversation === current.id) {
        // Ours, or a reply asked for elsewhere (another tab): shown streaming either way.
        setPending((p) => (p ? { ...p, text: p.text + frame.text } : { requestId: frame.request_id, user: null, text: frame.text }));
      } else if (frame.type === "chat.done") {
        setPending(null);
        loadMessages(current).catch(() => {});
        loadConversations();
      } else if (frame.type === "error" && frame.request_id && pendingRef.current?.requestId === frame.request_id) {
        setPending(null);
        setError(frame.message);
      }
    });
    return () => {
      off();
      unsubscribe();
    };
  }, [current, loadMessages, loadConversations]);

  useEffect(() => {
    if (listRef.current) listRef.current.scrollTop = listRef.current.scrollHeight;
  }, [messages, pending]);

  const send = (e) => {
    e?.preventDefault();
    const text = content.trim();
    if (!text || !current || pending) return;
    setError(null);
    const requestId = uuid();
    setPending({ requestId, user: text, text: "" });
    setContent("");
    socket().send({ type: "chat.send", conversation: current.id, content: text, request_id: requestId });
  };
  const stop = () => {
    if (pending) socket().send({ type: "chat.cancel", conversation: current.id, request_id: pending.requestId });
  };

  const down = providers.filter((p) => !p.reachable);
  return (
    <section className="page chat-page">
      <aside className="conversations" aria-label="Conversations">
        <h1>Chat</h1>
        {conversations === null ? (
          <p className="loading">Loading…</p>
        ) : (
          <ul>
            {conversations.map((c) => (
              <li key={c.id}>
                <button type="button" className={current?.id === c.id ? "current" : ""} aria-current={current?.id === c.id ? "true" : undefined} onClick={() => setCurrent(c)}>
                  {c.title || "Untitled"}
                  <span className="muted"> {c.provider} · {c.model}</span>
                </button>
              </li>
            ))}
          </ul>
        )}
        <NewConversation providers={providers} onCreated={(c) => { loadConversations(); setCurrent(c); }} />
        {down.length > 0 && (
          <div className="providers-down" role="status">
            {down.map((p) => <p key={p.name}><strong>{p.name}</strong>: {p.error}</p>)}
          </div>
        )}
      </aside>
      <div className="conversation">
        {!current ? (
          <p className="hint">Pick a conversation or start a new one.</p>
        ) : (
          <>
            <h2>{current.title || "Untitled"} <span className="muted">{current.provider} · {current.model}</span></h2>
            <ol className="messages" ref={listRef} aria-live="polite">
              {messages.map((m) => (
                <li key={m.id} className={`message role-${m.role} status-${m.status}`} data-message-id={m.id} data-status={m.status}>
                  <span className="role">{m.role}</span>
                  <div className="content">{m.content}</div>
                  {words(m.error) && <p className="error" role="alert">{words(m.error)}</p>}
                </li>
              ))}
              {pending?.user && (
                <li className="message role-user"><span className="role">user</span><div className="content">{pending.user}</div></li>
              )}
              {pending && (
                <li className="message role-assistant status-streaming" data-status="streaming">
                  <span className="role">assistant</span>
                  <div className="content">{pending.text || "…"}</div>
                </li>
              )}
            </ol>
            {error && <p className="error" role="alert">{error}</p>}
            <form className="composer" onSubmit={send}>
              <label htmlFor="chat-content" className="sr-only">Message</label>
              <textarea
                id="chat-content"
                name="content"
                rows={3}
                value={content}
                placeholder="Write a message; Enter sends, Shift+Enter starts a new line"
                onChange={(e) => setContent(e.target.value)}
                onKeyDown={(e) => {
                  if (e.key === "Enter" && !e.shiftKey) send(e);
                }}
              />
              <button type="submit" className="primary" disabled={Boolean(pending)}>Send</button>
              <button type="button" onClick={stop} disabled={!pending}>Stop</button>
            </form>
          </>
        )}
      </div>
    </section>
  );
}
