// /canvas/: the user's graphs: create, rename, delete, duplicate, import and export JSON.
import { useEffect, useRef, useState } from "react";
import { api, apiAll, errorText, formatTime, uuid } from "./api.js";

// A document with new node and edge ids (edges follow their nodes), ready to POST.
function freshCopy(doc, name) {
  const ids = new Map(doc.nodes.map((n) => [n.id, uuid()]));
  return {
    name,
    description: doc.description || "",
    nodes: doc.nodes.map((n) => ({ type: n.type, label: n.label || "", position: n.position, config: n.config || {}, id: ids.get(n.id) })),
    edges: doc.edges.map((e) => ({
      id: uuid(),
      source: ids.get(e.source) || e.source,
      source_port: e.source_port,
      target: ids.get(e.target) || e.target,
      target_port: e.target_port,
    })),
  };
}

function GraphRow({ graph, onChanged, onError }) {
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState(graph.name);
  const act = async (fn) => {
    try {
      await fn();
      onChanged();
    } catch (err) {
      onError(errorText(err));
    }
  };
  const rename = (e) => {
    e.preventDefault();
    act(async () => {
      await api(`/api/graphs/${graph.id}/`, { method: "PATCH", body: { name } });
      setRenaming(false);
    });
  };
  const duplicate = () =>
    act(async () => {
      const doc = await api(`/api/graphs/${graph.id}/`);
      await api("/api/graphs/", { method: "POST", body: freshCopy(doc, `${doc.name} (copy)`.slice(0, 200)) });
    });
  const exportJson = async () => {
    try {
      const doc = await api(`/api/graphs/${graph.id}/`);
      const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `${doc.name.replace(/[^\w.-]+/g, "_") || "graph"}.json`;
      a.click();
      URL.revokeObjectURL(a.href);
    } catch (err) {
      onError(errorText(err));
    }
  };
  const remove = () => {
    if (!window.confirm(`Delete "${graph.name}" and its runs?`)) return;
    act(() => api(`/api/graphs/${graph.id}/`, { method: "DELETE" }));
  };
  return (
    <li className="graph-row" data-graph-id={graph.id}>
      {renaming ? (
        <form onSubmit={rename} className="inline">
          <label htmlFor={`rename-${graph.id}`} className="sr-only">New name</label>
          <input id={`rename-${graph.id}`} name="name" value={name} maxLength={200} required autoFocus onChange={(e) => setName(e.target.value)} />
          <button type="submit">Save name</button>
          <button type="button" onClick={() => setRenaming(false)}>Cancel</button>
        </form>
      ) : (
        <a className="graph-name" href={`/canvas/${graph.id}/`}>{graph.name}</a>
      )}
      <span className="muted">v{graph.version} · {formatTime(graph.updated_at)}</span>
      <span className="actions">
        <a href={`/canvas/${graph.id}/runs/`}>Runs</a>
        <button type="button" onClick={() => setRenaming(true)} aria-label={`Rename ${graph.name}`}>Rename</button>
        <button type="button" onClick={duplicate} aria-label={`Duplicate ${graph.name}`}>Duplicate</button>
        <button type="button" onClick={exportJson} aria-label={`Export ${graph.name}`}>Export JSON</button>
        <button type="button" className="danger" onClick={remove} aria-label={`Delete ${graph.name}`}>Delete</button>
      </span>
    </li>
  );
}

export default function GraphsPage() {
  const [graphs, setGraphs] = useState(null);
  const [name, setName] = useState("");
  const [error, setError] = useState(null);
  const fileRef = useRef(null);
  const load = () => apiAll("/api/graphs/").then(setGraphs).catch((err) => setError(errorText(err)));
  useEffect(() => {
    load();
  }, []);
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const graph = await api("/api/graphs/", { method: "POST", body: { name } });
      window.location.assign(`/canvas/${graph.id}/`);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const importFile = async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    setError(null);
    try {
      let doc;
      try {
        doc = JSON.parse(await file.text());
      } catch {
        throw new Error(`${file.name} is not JSON.`);
      }
      if (!doc || !Array.isArray(doc.nodes) || !Array.isArray(doc.edges)) throw new Error(`${file.name} is not a graph document (it needs "nodes" and "edges").`);
      await api("/api/graphs/", { method: "POST", body: freshCopy(doc, String(doc.name || file.name.replace(/\.json$/, "")).slice(0, 200)) });
      load();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <section className="page graphs-page">
      <h1>Your canvases</h1>
      <div className="toolbar">
        <form onSubmit={create} className="inline">
          <label htmlFor="new-graph-name">New canvas</label>
          <input id="new-graph-name" name="name" value={name} maxLength={200} required placeholder="Name" onChange={(e) => setName(e.target.value)} />
          <button type="submit" className="primary">Create</button>
        </form>
        <label className="file-button">
          Import JSON
          <input ref={fileRef} type="file" name="import" accept="application/json,.json" onChange={importFile} />
        </label>
      </div>
      {error && <pre className="error" role="alert">{error}</pre>}
      {graphs === null ? (
        <p className="loading">Loading…</p>
      ) : graphs.length === 0 ? (
        <p>No canvas yet: create one above, or import a JSON document.</p>
      ) : (
        <ul className="graph-list">
          {graphs.map((g) => <GraphRow key={g.id} graph={g} onChanged={load} onError={setError} />)}
        </ul>
      )}
    </section>
  );
}
