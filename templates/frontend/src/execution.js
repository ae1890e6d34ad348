// One execution followed live over the socket (docs/realtime.md): the snapshot, the replay of
// persisted events after the last seq seen, live events and token frames. Used by the editor
// and the run page; a reload subscribes again and picks up where the run is.
import { useEffect, useState } from "react";
import { api, words } from "./api.js";
import { socket } from "./socket.js";

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

function nodeTextOf(type, outputs) {
  if (!outputs) return undefined;
  if (typeof outputs.text === "string") return outputs.text;
  if ("value" in outputs) return typeof outputs.value === "string" ? outputs.value : JSON.stringify(outputs.value);
  if (typeof outputs.body === "string") return outputs.body;
  return JSON.stringify(outputs);
}

export function applyFrame(state, frame) {
  if (frame.type === "subscribed") {
    const snap = frame.snapshot || {};
    const nodes = { ...state.nodes };
    for (const [id, status] of Object.entries(snap.nodes || {})) {
      nodes[id] = { ...nodes[id], status: nodes[id]?.status && status === "pending" ? nodes[id].status : status };
    }
    return { ...state, status: snap.status || state.status, nodes };
  }
  if (frame.type !== "event") return state;
  const data = frame.data || {};
  const event = frame.event;
  if (event.startsWith("execution.")) {
    return {
      ...state,
      status: data.status || state.status,
      outputs: data.outputs || state.outputs,
      error: data.error || state.error,
    };
  }
  const id = data.node;
  if (!id) return state;
  const node = { ...(state.nodes[id] || {}) };
  if (event === "node.token") {
    const index = typeof data.index === "number" ? data.index : node.nextIndex ?? 0;
    const count = typeof data.count === "number" ? data.count : 1;
    if (node.nextIndex !== undefined && index < node.nextIndex) return state; // seen already
    // Tokens streamed before this page subscribed are not replayed: mark the gap.
    if (node.nextIndex === undefined) node.missedStart = index > 0;
    node.text = (node.text || "") + (data.text || "");
    node.nextIndex = index + count;
    if (!node.status || node.status === "pending") node.status = "running";
  } else {
    if (data.status) node.status = data.status;
    else if (event === "node.started") node.status = "running";
    if (event === "node.retrying") {
      node.attempt = data.attempt;
      node.text = "";
      node.nextIndex = undefined;
      node.missedStart = false;
    }
    if (data.outputs) {
      node.text = nodeTextOf(data.type, data.outputs);
      node.missedStart = false;
    }
    if (data.error) node.error = words(data.error);
  }
  return { ...state, nodes: { ...state.nodes, [id]: node } };
}

// Follows execution `id` (or nothing when null). Returns {status, nodes: {<node id>:
// {status, text, error}}, outputs, error, detail} where detail is the REST read of the run
// (node runs with their times and usage), fetched when it ends.
export function useExecution(id) {
  const [state, setState] = useState({ nodes: {} });
  useEffect(() => {
    if (!id) {
      setState({ nodes: {} });
      return undefined;
    }
    setState({ id, nodes: {}, status: "queued" });
    let gone = false;
    const fetchDetail = () =>
      api(`/api/executions/${id}/`)
        .then((detail) => {
          if (gone) return;
          setState((s) => {
            const nodes = { ...s.nodes };
            for (const run of detail.node_runs) {
              const n = { ...nodes[run.node], status: run.status, run, missedStart: false };
              const text = nodeTextOf(run.type, run.outputs);
              if (text !== undefined) n.text = text;
              if (run.error) n.error = words(run.error);
              nodes[run.node] = n;
            }
            return { ...s, status: detail.status, outputs: detail.outputs, error: detail.error, detail, nodes };
          });
        })
        .catch(() => {});
    const unsubscribe = socket().subscribe(`execution:${id}`, (frame) => {
      if (frame.type === "error") return;
      setState((s) => applyFrame(s, frame));
      const terminal =
        (frame.type === "event" && /^execution\.(completed|failed|cancelled)$/.test(frame.event)) ||
        (frame.type === "subscribed" && TERMINAL.has(frame.snapshot?.status));
      if (terminal) fetchDetail();
    });
    return () => {
      gone = true;
      unsubscribe();
    };
  }, [id]);
  return state;
}
