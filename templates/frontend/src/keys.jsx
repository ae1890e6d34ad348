// /keys/: provider keys: add, activate, delete. Only hints are ever shown (the API never
// returns a secret).
import { useEffect, useState } from "react";
import { api, apiAll, errorText, formatTime } from "./api.js";

export default function KeysPage() {
  const [keys, setKeys] = useState(null);
  const [form, setForm] = useState({ provider: "groq", name: "", secret: "" });
  const [error, setError] = useState(null);
  const load = () => apiAll("/api/keys/").then(setKeys).catch((err) => setError(errorText(err)));
  useEffect(() => {
    load();
  }, []);
  const act = async (fn) => {
    setError(null);
    try {
      await fn();
      await load();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const add = (e) => {
    e.preventDefault();
    act(async () => {
      const body = { provider: form.provider, secret: form.secret };
      if (form.name) body.name = form.name;
      await api("/api/keys/", { method: "POST", body });
      setForm((f) => ({ ...f, name: "", secret: "" }));
    });
  };
  return (
    <section className="page keys-page">
      <h1>Provider keys</h1>
      <p className="muted">Keys are stored encrypted; only a hint of each is ever shown. One key per provider is active.</p>
      {error && <pre className="error" role="alert">{error}</pre>}
      {keys === null ? (
        <p className="loading">Loading…</p>
      ) : keys.length === 0 ? (
        <p>No key yet.</p>
      ) : (
        <table className="keys">
          <thead>
            <tr><th scope="col">provider</th><th scope="col">name</th><th scope="col">key</th><th scope="col">active</th><th scope="col">last used</th><th scope="col"><span className="sr-only">actions</span></th></tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} data-key-id={k.id}>
                <td>{k.provider}</td>
                <td>{k.name}</td>
                <td><code>{k.hint}</code></td>
                <td>{k.is_active ? "active" : ""}</td>
                <td>{formatTime(k.last_used_at)}</td>
                <td className="actions">
                  {k.is_active ? (
                    <button type="button" onClick={() => act(() => api(`/api/keys/${k.id}/`, { method: "PATCH", body: { is_active: false } }))} aria-label={`Deactivate ${k.provider} key ${k.name}`}>Deactivate</button>
                  ) : (
                    <button type="button" onClick={() => act(() => api(`/api/keys/${k.id}/`, { method: "PATCH", body: { is_active: true } }))} aria-label={`Activate ${k.provider} key ${k.name}`}>Activate</button>
                  )}
                  <button type="button" className="danger" aria-label={`Delete ${k.provider} key ${k.name}`} onClick={() => window.confirm(`Delete the ${k.provider} key "${k.name}"?`) && act(() => api(`/api/keys/${k.id}/`, { method: "DELETE" }))}>Delete</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form className="add-key" onSubmit={add}>
        <h2>Add a key</h2>
        <div className="field">
          <label htmlFor="key-provider">Provider</label>
          <select id="key-provider" name="provider" value={form.provider} onChange={(e) => setForm({ ...form, provider: e.target.value })}>
            <option value="groq">groq</option>
            <option value="ollama">ollama</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="key-name">Name</label>
          <input id="key-name" name="name" value={form.name} maxLength={200} placeholder="default" onChange={(e) => setForm({ ...form, name: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor="key-secret">Secret</label>
          <input id="key-secret" name="secret" type="password" autoComplete="off" required value={form.secret} onChange={(e) => setForm({ ...form, secret: e.target.value })} />
        </div>
        <button type="submit" className="primary">Add key</button>
      </form>
    </section>
  );
}
