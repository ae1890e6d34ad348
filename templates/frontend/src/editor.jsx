// The canvas editor (/canvas/<graph id>/): the graph drawn with React Flow, a palette from
// /api/node-types/, a config panel generated from each type's schema, a debounced PUT of the
// whole document, validation errors drawn on their nodes, undo/redo, runs followed live, and
// other windows' changes followed on the graph:<id> topic.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
} from "@xyflow/react";
import { api, errorText, formatDuration, uuid, words } from "./api.js";
import { socket } from "./socket.js";
import { ConfigForm } from "./configform.jsx";
import { ErrorsContext, RunContext, TypesContext, docToFlow, flowToDoc, nodeTypes } from "./canvasnode.jsx";
import { connectionProblem } from "./ports.js";
import { TERMINAL, useExecution } from "./execution.js";

const SAVE_DELAY_MS = 700;
const HISTORY_LIMIT = 100;

function initialConfig(type, nodes) {
  if (type === "input") {
    const taken = new Set(nodes.filter((n) => n.data.type === "input").map((n) => n.data.config.name));
    let name = "input";
    for (let i = 2; taken.has(name); i++) name = `input_${i}`;
    return { name };
  }
  if (type === "llm") return { provider: "ollama" };
  return {};
}

function errorsByNode(errors) {
  const byNode = {};
  const graph = [];
  for (const [key, list] of Object.entries(errors || {})) {
    if (key === "graph" || !Array.isArray(list)) graph.push(...(Array.isArray(list) ? list : []));
    else byNode[key] = list;
  }
  return { byNode, graph };
}

function Editor({ graphId }) {
  const flow = useReactFlow();
  const [types, setTypes] = useState(null);
  const [meta, setMeta] = useState(null); // {name, description}
  const [nodes, setNodes] = useState([]);
  const [edges, setEdges] = useState([]);
  const [saveState, setSaveState] = useState("saved"); // saved | dirty | saving | error
  const [saveError, setSaveError] = useState(null);
  const [validation, setValidation] = useState({ byNode: {}, graph: [] });
  const [notice, setNotice] = useState(null);
  const [conflict, setConflict] = useState(null); // {version}
  const history = useRef({ past: [], future: [] }); // snapshots before each edit / after an undo
  const [, setHistoryTick] = useState(0);
  const [executionId, setExecutionId] = useState(null);
  const [inputValues, setInputValues] = useState({});
  const [runError, setRunError] = useState(null);
  const [models, setModels] = useState([]);
  const [loadError, setLoadError] = useState(null);

  const run = useExecution(executionId);

  // The latest state for callbacks that outlive a render (timers, socket handlers).
  const live = useRef({});
  live.current = { nodes, edges, meta, conflict };
  const version = useRef(0); // the document version this window holds
  const dirty = useRef(false);
  const saving = useRef(null); // the save in flight (a promise)
  const remoteSeen = useRef(0); // the highest version announced on graph:<id>
  const saveTimer = useRef(null);
  const lastAdded = useRef(null);
  const dragStart = useRef(null);
  const lastCoalesce = useRef({ key: null, at: 0 });

  // -- loading ------------------------------------------------------------------------------

  const applyDoc = useCallback((doc) => {
    const { nodes: n, edges: e } = docToFlow(doc);
    const selected = new Set(live.current.nodes.filter((x) => x.selected).map((x) => x.id));
    setNodes(n.map((x) => (selected.has(x.id) ? { ...x, selected: true } : x)));
    setEdges(e);
    setMeta({ name: doc.name, description: doc.description });
    version.current = doc.version;
  }, []);

  const validate = useCallback(async () => {
    try {
      const result = await api(`/api/graphs/${graphId}/validate/`, { method: "POST", body: {} });
      setValidation(errorsByNode(result.errors));
    } catch {
      /* a failed validate leaves the last result shown */
    }
  }, [graphId]);

  useEffect(() => {
    (async () => {
      try {
        const [typeList, doc, runs] = await Promise.all([
          api("/api/node-types/"),
          api(`/api/graphs/${graphId}/`),
          api(`/api/executions/?graph=${graphId}`),
        ]);
        setTypes(Object.fromEntries(typeList.map((t) => [t.type, t])));
        applyDoc(doc);
        requestAnimationFrame(() => flow.fitView({ padding: 0.2, maxZoom: 1 }));
        // The latest run, still going or finished: a reload resumes following it.
        if (runs.results.length) {
          setExecutionId(runs.results[0].id);
          setInputValues(Object.fromEntries(Object.entries(runs.results[0].inputs || {}).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])));
        }
        validate();
      } catch (err) {
        setLoadError(errorText(err));
      }
    })();
    api("/api/providers/ollama/models/")
      .then((list) => setModels((Array.isArray(list) ? list : list.models || list.results || []).map((m) => m.name || m.model || m.id).filter(Boolean)))
      .catch(() => {});
  }, [graphId]);

  // -- saving -------------------------------------------------------------------------------

  const save = useCallback(async () => {
    clearTimeout(saveTimer.current);
    if (saving.current) {
      await saving.current;
      if (!dirty.current) return;
    }
    if (live.current.conflict) return; // the person decides first
    const { nodes: n, edges: e, meta: m } = live.current;
    const base = version.current;
    dirty.current = false;
    setSaveState("saving");
    const body = { name: m.name, description: m.description || "", ...flowToDoc(n, e) };
    const attempt = api(`/api/graphs/${graphId}/`, { method: "PUT", body })
      .then((doc) => {
        version.current = doc.version;
        setSaveError(null);
        if (doc.version > base + 1 && remoteSeen.current > base) {
          setNotice(`Saved over a change made in another window (version ${remoteSeen.current}).`);
        }
        setSaveState(dirty.current ? "dirty" : "saved");
        validate();
      })
      .catch((err) => {
        dirty.current = true;
        setSaveState("error");
        setSaveError(errorText(err));
        if (err.body?.errors) setValidation(errorsByNode(err.body.errors));
      });
    saving.current = attempt;
    await attempt;
    saving.current = null;
  }, [graphId, validate]);

  const scheduleSave = useCallback(() => {
    dirty.current = true;
    setSaveState("dirty");
    clearTimeout(saveTimer.current);
    saveTimer.current = setTimeout(save, SAVE_DELAY_MS);
  }, [save]);

  useEffect(() => {
    const warn = (e) => {
      if (dirty.current || saving.current) {
        e.preventDefault();
        e.returnValue = "";
      }
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, []);

  // -- edits and history ----------------------------------------------------------------------

  const snapshot = () => ({ nodes: live.current.nodes.map((n) => ({ ...n, selected: false })), edges: live.current.edges });

  // Every edit goes through here: remember the state before it, apply it, autosave.
  const commit = useCallback(
    (nextNodes, nextEdges, { coalesce = null, before = null } = {}) => {
      const now = Date.now();
      const merge = coalesce && lastCoalesce.current.key === coalesce && now - lastCoalesce.current.at < 1500;
      lastCoalesce.current = { key: coalesce, at: now };
      if (!merge) {
        history.current.past = [...history.current.past, before || snapshot()].slice(-HISTORY_LIMIT);
        history.current.future = [];
        setHistoryTick((t) => t + 1);
      }
      // Callbacks that run before the next render (React Flow reports a deletion as an edge
      // change and a node change in one go) must see this edit.
      live.current = { ...live.current, nodes: nextNodes, edges: nextEdges };
      setNodes(nextNodes);
      setEdges(nextEdges);
      scheduleSave();
    },
    [scheduleSave],
  );

  const travel = useCallback(
    (from, to) => {
      const h = history.current;
      if (!h[from].length) return;
      const target = from === "past" ? h.past.pop() : h.future.shift();
      if (to === "past") h.past.push(snapshot());
      else h.future.unshift(snapshot());
      setNodes(target.nodes);
      setEdges(target.edges);
      setHistoryTick((t) => t + 1);
      lastCoalesce.current = { key: null, at: 0 };
      scheduleSave();
    },
    [scheduleSave],
  );
  const undo = useCallback(() => travel("past", "future"), [travel]);
  const redo = useCallback(() => travel("future", "past"), [travel]);

  useEffect(() => {
    const onKey = (e) => {
      const target = e.target;
      if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
      if (!(e.ctrlKey || e.metaKey)) return;
      const key = e.key.toLowerCase();
      if (key === "z" && !e.shiftKey) {
        e.preventDefault();
        undo();
      } else if ((key === "z" && e.shiftKey) || key === "y") {
        e.preventDefault();
        redo();
      } else if (key === "s") {
        e.preventDefault();
        save();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [undo, redo, save]);

  const onNodesChange = useCallback(
    (changes) => {
      const structural = changes.filter((c) => c.type === "remove");
      const next = applyNodeChanges(changes, live.current.nodes);
      if (structural.length) {
        const removed = new Set(structural.map((c) => c.id));
        const nextEdges = live.current.edges.filter((e) => !removed.has(e.source) && !removed.has(e.target));
        commit(next, nextEdges, { coalesce: "delete" });
      } else {
        setNodes(next); // selection, dimensions, positions while dragging: not an edit yet
      }
    },
    [commit],
  );

  const onEdgesChange = useCallback(
    (changes) => {
      const next = applyEdgeChanges(changes, live.current.edges);
      if (changes.some((c) => c.type === "remove")) commit(live.current.nodes, next, { coalesce: "delete" });
      else setEdges(next);
    },
    [commit],
  );

  const onNodeDragStart = useCallback(() => {
    dragStart.current = snapshot();
  }, []);

  const onNodeDragStop = useCallback(() => {
    const before = dragStart.current;
    dragStart.current = null;
    const moved = !before || before.nodes.some((b) => {
      const now = live.current.nodes.find((n) => n.id === b.id);
      return now && (now.position.x !== b.position.x || now.position.y !== b.position.y);
    });
    if (moved) commit(live.current.nodes, live.current.edges, { before });
  }, [commit]);

  const isValidConnection = useCallback(
    (connection) => types && !connectionProblem(connection, live.current.nodes, live.current.edges, types),
    [types],
  );

  const onConnect = useCallback(
    (connection) => {
      const problem = connectionProblem(connection, live.current.nodes, live.current.edges, types);
      if (problem) {
        setNotice(problem);
        return;
      }
      const edge = { id: uuid(), source: connection.source, sourceHandle: connection.sourceHandle, target: connection.target, targetHandle: connection.targetHandle };
      commit(live.current.nodes, [...live.current.edges, edge]);
    },
    [commit, types],
  );

  const addNode = useCallback(
    (type) => {
      const current = live.current.nodes;
      const anchor = lastAdded.current && current.find((n) => n.id === lastAdded.current);
      let position;
      if (anchor) {
        position = { x: anchor.position.x + 240, y: anchor.position.y };
      } else {
        const pane = document.querySelector(".react-flow")?.getBoundingClientRect();
        position = pane ? flow.screenToFlowPosition({ x: pane.left + pane.width * 0.15, y: pane.top + pane.height * 0.3 }) : { x: 0, y: 0 };
      }
      position = { x: Math.round(position.x), y: Math.round(position.y) };
      const node = {
        id: uuid(),
        type: "canvas",
        position,
        selected: true,
        data: { type, label: "", config: initialConfig(type, current) },
      };
      lastAdded.current = node.id;
      commit([...current.map((n) => ({ ...n, selected: false })), node], live.current.edges);
      // Keep the new node in view.
      requestAnimationFrame(() => {
        const pane = document.querySelector(".react-flow")?.getBoundingClientRect();
        const { x, y, zoom } = flow.getViewport();
        if (pane && (position.x * zoom + x + 220 * zoom > pane.width || position.y * zoom + y + 160 * zoom > pane.height || position.x * zoom + x < 0)) {
          flow.fitView({ padding: 0.15, maxZoom: 1 });
        }
      });
    },
    [commit, flow],
  );

  const updateNode = useCallback(
    (id, patch, field) => {
      const next = live.current.nodes.map((n) => (n.id === id ? { ...n, data: { ...n.data, ...patch } } : n));
      commit(next, live.current.edges, { coalesce: `${id}:${field}` });
    },
    [commit],
  );

  const deleteNode = useCallback(
    (id) => {
      commit(
        live.current.nodes.filter((n) => n.id !== id),
        live.current.edges.filter((e) => e.source !== id && e.target !== id),
      );
    },
    [commit],
  );

  // -- other windows (graph:<id>) --------------------------------------------------------------

  const refetch = useCallback(async () => {
    try {
      const doc = await api(`/api/graphs/${graphId}/`);
      if (doc.version <= version.current) return;
      applyDoc(doc);
      validate();
    } catch (err) {
      setNotice(errorText(err));
    }
  }, [graphId, applyDoc, validate]);

  useEffect(() => {
    let timer = null;
    const unsubscribe = socket().subscribe(`graph:${graphId}`, (frame) => {
      if (frame.type !== "event") return;
      if (frame.event === "graph.deleted") {
        setNotice("This graph was deleted in another window.");
        return;
      }
      const v = frame.seq;
      if (frame.event === "graph.updated" && !frame.data.replaced) {
        // A rename or a new description: nothing drawn changes, no conflict with edits here.
        setMeta((m) => ({ ...m, name: frame.data.name, description: frame.data.description }));
        live.current.meta = { ...live.current.meta, name: frame.data.name, description: frame.data.description };
        if (v === version.current + 1 && !saving.current) {
          version.current = v;
          return;
        }
      }
      remoteSeen.current = Math.max(remoteSeen.current, v);
      clearTimeout(timer);
      // Wait for this window's own save to answer: its version tells ours from theirs.
      timer = setTimeout(async () => {
        if (saving.current) await saving.current;
        if (remoteSeen.current <= version.current) return; // our own save
        if (dirty.current) {
          clearTimeout(saveTimer.current);
          setConflict({ version: remoteSeen.current });
          setSaveState("dirty");
        } else {
          refetch();
        }
      }, 50);
    });
    return () => {
      clearTimeout(timer);
      unsubscribe();
    };
  }, [graphId, refetch]);

  const resolveConflict = useCallback(
    async (keepMine) => {
      setConflict(null);
      live.current.conflict = null;
      if (keepMine) {
        await save();
      } else {
        dirty.current = false;
        setSaveState("saved");
        version.current = 0;
        await refetch();
      }
    },
    [save, refetch],
  );

  // -- runs ----------------------------------------------------------------------------------

  const inputNodes = nodes.filter((n) => n.data.type === "input" && n.data.config.name);
  const running = run.status && !TERMINAL.has(run.status);

  const startRun = useCallback(
    async (e) => {
      e.preventDefault();
      setRunError(null);
      if (dirty.current || saving.current) await save();
      const inputs = {};
      for (const n of live.current.nodes) {
        if (n.data.type !== "input" || !n.data.config.name) continue;
        const value = inputValues[n.data.config.name];
        if (value !== undefined && value !== "") inputs[n.data.config.name] = value;
      }
      try {
        const execution = await api(`/api/graphs/${graphId}/executions/`, { method: "POST", body: { inputs } });
        setExecutionId(execution.id);
      } catch (err) {
        setRunError(errorText(err));
        if (err.body?.errors) setValidation(errorsByNode(err.body.errors));
      }
    },
    [graphId, inputValues, save],
  );

  const cancelRun = useCallback(async () => {
    try {
      await api(`/api/executions/${executionId}/cancel/`, { method: "POST", body: {} });
    } catch (err) {
      setRunError(errorText(err));
    }
  }, [executionId]);

  // -- render --------------------------------------------------------------------------------

  const selected = nodes.find((n) => n.selected);
  const labelOf = (id) => {
    const n = nodes.find((x) => x.id === id);
    return n ? n.data.label || `${types?.[n.data.type]?.label || n.data.type}${n.data.config.name ? ` ${n.data.config.name}` : ""}` : id.slice(0, 8);
  };
  const typesValue = useMemo(() => types || {}, [types]);

  if (loadError) return <p className="error" role="alert">{loadError}</p>;
  if (!types || !meta) return <p className="loading">Loading…</p>;

  return (
    <TypesContext.Provider value={typesValue}>
      <RunContext.Provider value={run}>
        <ErrorsContext.Provider value={validation.byNode}>
          <div className="editor">
            <div className="editor-bar">
              <h1 className="graph-name">{meta.name}</h1>
              <span className={`save-state save-${saveState}`} role="status" aria-live="polite" data-save-state={saveState}>
                {{ saved: "All changes saved", dirty: "Unsaved changes", saving: "Saving…", error: "Not saved" }[saveState]}
              </span>
              <button type="button" onClick={save}>Save</button>
              <button type="button" onClick={undo} disabled={!history.current.past.length} title="Ctrl+Z">Undo</button>
              <button type="button" onClick={redo} disabled={!history.current.future.length} title="Ctrl+Shift+Z">Redo</button>
              <a href={`/canvas/${graphId}/runs/`}>Past runs</a>
            </div>
            {conflict && (
              <div className="banner conflict" role="alert">
                <span>Version conflict: this graph was changed in another window (version {conflict.version}) while you had unsaved edits.</span>
                <button type="button" onClick={() => resolveConflict(false)}>Load their version</button>
                <button type="button" onClick={() => resolveConflict(true)}>Keep mine</button>
              </div>
            )}
            {saveError && <div className="banner error" role="alert"><pre>{saveError}</pre></div>}
            {notice && (
              <div className="banner notice" role="status">
                <span>{notice}</span>
                <button type="button" onClick={() => setNotice(null)} aria-label="Dismiss">×</button>
              </div>
            )}
            {validation.graph.length > 0 && (
              <ul className="banner graph-errors">
                {validation.graph.map((e, i) => <li key={i}>{e.message}</li>)}
              </ul>
            )}
            <div className="editor-body">
              <nav className="palette" aria-label="Node types">
                <h2>Add a node</h2>
                {Object.values(types).map((t) => (
                  <button type="button" key={t.type} onClick={() => addNode(t.type)} title={t.description}>
                    {t.label}
                  </button>
                ))}
              </nav>
              <div className="flow" aria-label="Canvas">
                <ReactFlow
                  nodes={nodes}
                  edges={edges}
                  nodeTypes={nodeTypes}
                  onNodesChange={onNodesChange}
                  onEdgesChange={onEdgesChange}
                  onConnect={onConnect}
                  isValidConnection={isValidConnection}
                  onNodeDragStart={onNodeDragStart}
                  onNodeDragStop={onNodeDragStop}
                  deleteKeyCode={["Delete", "Backspace"]}
                  minZoom={0.2}
                  maxZoom={2}
                  proOptions={{ hideAttribution: true }}
                >
                  <Background gap={20} />
                  <Controls />
                  <MiniMap pannable zoomable />
                </ReactFlow>
              </div>
              <aside className="side">
                <section className="panel config-panel" aria-labelledby="config-heading">
                  <h2 id="config-heading">{selected ? `${types[selected.data.type]?.label || selected.data.type} node` : "Node"}</h2>
                  {selected ? (
                    <>
                      <div className="field">
                        <label htmlFor={`label-${selected.id}`}>label</label>
                        <input id={`label-${selected.id}`} name="label" value={selected.data.label} maxLength={200} onChange={(e) => updateNode(selected.id, { label: e.target.value }, "label")} />
                      </div>
                      <ConfigForm
                        nodeId={selected.id}
                        schema={types[selected.data.type]?.config_schema}
                        config={selected.data.config}
                        datalists={selected.data.type === "llm" ? { model: models } : {}}
                        onChange={(config, field) => updateNode(selected.id, { config }, field)}
                      />
                      {validation.byNode[selected.id] && (
                        <ul className="field-errors" aria-label="Problems">
                          {validation.byNode[selected.id].map((e, i) => <li key={i}>{e.field ? `${e.field}: ` : ""}{e.message}</li>)}
                        </ul>
                      )}
                      <button type="button" className="danger" onClick={() => deleteNode(selected.id)}>Delete node</button>
                    </>
                  ) : (
                    <p className="hint">Click a node to edit its settings. Drag from an output to an input to connect them; select a node or an edge and press Delete to remove it.</p>
                  )}
                </section>
                <section className="panel run-panel" aria-labelledby="run-heading">
                  <h2 id="run-heading">Run</h2>
                  <form onSubmit={startRun} className="inputs-form">
                    {inputNodes.map((n) => (
                      <div className="field" key={n.id}>
                        <label htmlFor={`input-${n.id}`}>{n.data.config.name}</label>
                        <input
                          id={`input-${n.id}`}
                          name={n.data.config.name}
                          value={inputValues[n.data.config.name] ?? ""}
                          placeholder={n.data.config.default != null ? String(n.data.config.default) : ""}
                          onChange={(e) => setInputValues((v) => ({ ...v, [n.data.config.name]: e.target.value }))}
                        />
                      </div>
                    ))}
                    <div className="buttons">
                      <button type="submit" className="primary" disabled={Boolean(running)}>Run</button>
                      <button type="button" onClick={cancelRun} disabled={!running}>Cancel</button>
                    </div>
                  </form>
                  {runError && <pre className="error" role="alert">{runError}</pre>}
                  {run.id && (
                    <div className="run-result" data-execution-id={run.id} data-run-status={run.status || ""}>
                      <p>
                        Run <a href={`/canvas/runs/${run.id}/`}>{run.id.slice(0, 8)}</a>: <strong className={`badge status-${run.status}`}>{run.status}</strong>
                        {run.detail && ` in ${formatDuration(run.detail.started_at || run.detail.queued_at, run.detail.finished_at)}`}
                      </p>
                      {run.error && <p className="error" role="alert">{words(run.error)}</p>}
                      {run.outputs && Object.keys(run.outputs).length > 0 && (
                        <dl className="outputs" aria-label="Outputs">
                          {Object.entries(run.outputs).map(([name, value]) => (
                            <div key={name}>
                              <dt>{name}</dt>
                              <dd data-output={name}>{typeof value === "string" ? value : JSON.stringify(value)}</dd>
                            </div>
                          ))}
                        </dl>
                      )}
                      {run.detail && (
                        <table className="node-times">
                          <caption>Time per node</caption>
                          <thead><tr><th scope="col">node</th><th scope="col">status</th><th scope="col">time</th></tr></thead>
                          <tbody>
                            {run.detail.node_runs.map((r) => (
                              <tr key={r.node}>
                                <td>{labelOf(r.node)}</td>
                                <td>{r.status}</td>
                                <td>{formatDuration(r.started_at, r.finished_at)}</td>
                              </tr>
                            ))}
                          </tbody>
                        </table>
                      )}
                    </div>
                  )}
                </section>
              </aside>
            </div>
          </div>
        </ErrorsContext.Provider>
      </RunContext.Provider>
    </TypesContext.Provider>
  );
}

export default function EditorPage({ graph }) {
  return (
    <ReactFlowProvider>
      <Editor graphId={graph} />
    </ReactFlowProvider>
  );
}
