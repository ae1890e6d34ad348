// /canvas/<graph id>/runs/ (past runs) and /canvas/runs/<execution id>/ (one run node by node,
// with the graph drawn in its final state).
import { useEffect, useMemo, useState } from "react";
import { Background, Controls, ReactFlow, ReactFlowProvider } from "@xyflow/react";
import { api, apiAll, errorText, formatDuration, formatTime, words } from "./api.js";
import { ErrorsContext, RunContext, TypesContext, docToFlow, nodeTypes } from "./canvasnode.jsx";
import { useExecution } from "./execution.js";

export function RunsPage({ graph }) {
  const [doc, setDoc] = useState(null);
  const [runs, setRuns] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api(`/api/graphs/${graph}/`).then(setDoc).catch((err) => setError(errorText(err)));
    apiAll(`/api/executions/?graph=${graph}`).then(setRuns).catch((err) => setError(errorText(err)));
  }, [graph]);
  return (
    <section className="page runs-page">
      <h1>Runs of <a href={`/canvas/${graph}/`}>{doc ? doc.name : "…"}</a></h1>
      {error && <p className="error" role="alert">{error}</p>}
      {runs === null ? (
        <p className="loading">Loading…</p>
      ) : runs.length === 0 ? (
        <p>No run yet.</p>
      ) : (
        <table className="runs">
          <thead>
            <tr><th scope="col">run</th><th scope="col">status</th><th scope="col">queued</th><th scope="col">duration</th><th scope="col">version</th></tr>
          </thead>
          <tbody>
            {runs.map((r) => (
              <tr key={r.id} data-execution-id={r.id}>
                <td><a href={`/canvas/runs/${r.id}/`}>{r.id.slice(0, 8)}</a></td>
                <td><span className={`badge status-${r.status}`}>{r.status}</span></td>
                <td>{formatTime(r.queued_at)}</td>
                <td>{formatDuration(r.started_at, r.finished_at)}</td>
                <td>{r.graph_version}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const show = (value) => (value === null || value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value, null, 2));

function RunGraph({ doc, types, run }) {
  const { nodes, edges } = useMemo(() => docToFlow(doc), [doc]);
  return (
    <TypesContext.Provider value={types}>
      <RunContext.Provider value={run}>
        <ErrorsContext.Provider value={{}}>
          <div className="flow run-flow" aria-label="The graph">
            <ReactFlow nodes={nodes} edges={edges} nodeTypes={nodeTypes} nodesDraggable={false} nodesConnectable={false} elementsSelectable={false} fitView fitViewOptions={{ maxZoom: 1 }} proOptions={{ hideAttribution: true }}>
              <Background gap={20} />
              <Controls showInteractive={false} />
            </ReactFlow>
          </div>
        </ErrorsContext.Provider>
      </RunContext.Provider>
    </TypesContext.Provider>
  );
}

export function RunPage({ execution, graph }) {
  const run = useExecution(execution);
  const [doc, setDoc] = useState(null);
  const [types, setTypes] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api(`/api/graphs/${graph}/`).then(setDoc).catch((err) => setError(errorText(err)));
    api("/api/node-types/").then((list) => setTypes(Object.fromEntries(list.map((t) => [t.type, t])))).catch((err) => setError(errorText(err)));
  }, [graph]);
  const detail = run.detail;
  const labelOf = (id) => {
    const n = doc?.nodes.find((x) => x.id === id);
    return n ? n.label || `${types?.[n.type]?.label || n.type}${n.config?.name ? ` ${n.config.name}` : ""}` : id.slice(0, 8);
  };
  return (
    <section className="page run-page" data-execution-id={execution} data-run-status={run.status || ""}>
      <h1>
        Run {execution.slice(0, 8)} of <a href={`/canvas/${graph}/`}>{doc ? doc.name : "…"}</a>{" "}
        <span className={`badge status-${run.status}`}>{run.status}</span>
      </h1>
      <p><a href={`/canvas/${graph}/runs/`}>All runs of this graph</a></p>
      {error && <p className="error" role="alert">{error}</p>}
      {detail && (
        <p className="muted">
          Queued {formatTime(detail.queued_at)} · took {formatDuration(detail.started_at, detail.finished_at) || "—"} · graph version {detail.graph_version}
          {doc && doc.version !== detail.graph_version && " (the graph has changed since: it is drawn as it is now)"}
        </p>
      )}
      {run.error && <p className="error" role="alert">{words(run.error)}</p>}
      {doc && types && (
        <ReactFlowProvider>
          <RunGraph doc={doc} types={types} run={run} />
        </ReactFlowProvider>
      )}
      {detail && (
        <>
          <h2>Inputs and outputs</h2>
          <dl className="outputs">
            {Object.entries(detail.inputs || {}).map(([k, v]) => <div key={`in-${k}`}><dt>input {k}</dt><dd>{show(v)}</dd></div>)}
            {Object.entries(detail.outputs || {}).map(([k, v]) => <div key={`out-${k}`}><dt>output {k}</dt><dd data-output={k}>{show(v)}</dd></div>)}
          </dl>
          <h2>Node by node</h2>
          <table className="node-runs">
            <thead>
              <tr><th scope="col">node</th><th scope="col">status</th><th scope="col">attempts</th><th scope="col">time</th><th scope="col">tokens</th><th scope="col">inputs</th><th scope="col">outputs</th><th scope="col">error</th></tr>
            </thead>
            <tbody>
              {detail.node_runs.map((r) => (
                <tr key={r.node} data-node-run={r.node}>
                  <th scope="row">{labelOf(r.node)}<br /><span className="muted">{r.type}</span></th>
                  <td><span className={`badge status-${r.status}`}>{r.status}</span></td>
                  <td>{r.attempts}</td>
                  <td>{formatDuration(r.started_at, r.finished_at)}</td>
                  <td>{r.usage ? show(r.usage.total_tokens ?? r.usage) : ""}</td>
                  <td><pre>{show(r.inputs)}</pre></td>
                  <td><pre>{show(r.outputs)}</pre></td>
                  <td>{r.error && <pre className="error">{words(r.error)}</pre>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
