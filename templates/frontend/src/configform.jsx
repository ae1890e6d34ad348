// A node's config as form fields generated from its type's JSON schema: one field per schema
// property, named after it (name="template"). An emptied field is left out of the config, so
// the type's default applies; a value the schema cannot take is refused by the API on save.
import { useEffect, useState } from "react";

const LONG_TEXT = new Set(["template", "text", "body", "system_prompt"]);

function kindOf(schema) {
  if (schema.enum) return "enum";
  const types = Array.isArray(schema.type) ? schema.type.filter((t) => t !== "null") : [schema.type];
  if (types.length === 1) {
    if (types[0] === "boolean") return "boolean";
    if (types[0] === "integer" || types[0] === "number") return types[0];
    if (types[0] === "string") return "string";
    if (types[0] === "object" || types[0] === "array") return "json";
  }
  return "any"; // several types, or none: text, read as JSON when it parses as a non-string
}

function parseAny(text) {
  if (text.trim() === "") return undefined;
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? text : value;
  } catch {
    return text;
  }
}

function JsonField({ id, name, value, onChange, describedBy }) {
  const [text, setText] = useState(value === undefined ? "" : JSON.stringify(value, null, 2));
  const [error, setError] = useState(null);
  useEffect(() => {
    setText(value === undefined ? "" : JSON.stringify(value, null, 2));
  }, [JSON.stringify(value)]);
  return (
    <>
      <textarea
        id={id}
        name={name}
        rows={3}
        value={text}
        aria-describedby={describedBy}
        aria-invalid={error ? "true" : undefined}
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value.trim() === "") {
            setError(null);
            onChange(undefined);
            return;
          }
          try {
            onChange(JSON.parse(e.target.value));
            setError(null);
          } catch {
            setError("Not valid JSON yet.");
          }
        }}
      />
      {error && <span className="field-error">{error}</span>}
    </>
  );
}

export function ConfigForm({ nodeId, schema, config, onChange, datalists = {} }) {
  const properties = schema?.properties || {};
  const required = new Set(schema?.required || []);
  const set = (key, value) => {
    const next = { ...config };
    if (value === undefined) delete next[key];
    else next[key] = value;
    onChange(next, key);
  };
  return (
    <div className="config-form">
      {Object.entries(properties).map(([key, prop]) => {
        const id = `cfg-${nodeId}-${key}`;
        const helpId = prop.description ? `${id}-help` : undefined;
        const kind = kindOf(prop);
        const value = config[key];
        const shown = value ?? prop.default;
        let field;
        if (kind === "boolean") {
          field = <input id={id} name={key} type="checkbox" checked={Boolean(shown)} aria-describedby={helpId} onChange={(e) => set(key, e.target.checked)} />;
        } else if (kind === "enum") {
          field = (
            <select id={id} name={key} value={value ?? prop.default ?? ""} aria-describedby={helpId} onChange={(e) => set(key, e.target.value === "" ? undefined : e.target.value)}>
              {prop.default === undefined && <option value="">— choose —</option>}
              {prop.enum.map((option) => (
                <option key={String(option)} value={option}>{String(option)}</option>
              ))}
            </select>
          );
        } else if (kind === "integer" || kind === "number") {
          field = (
            <input
              id={id}
              name={key}
              type="number"
              step={kind === "integer" ? 1 : "any"}
              min={prop.minimum}
              max={prop.maximum}
              value={value ?? ""}
              placeholder={prop.default != null ? String(prop.default) : ""}
              aria-describedby={helpId}
              onChange={(e) => {
                const n = kind === "integer" ? parseInt(e.target.value, 10) : parseFloat(e.target.value);
                set(key, Number.isFinite(n) ? n : undefined);
              }}
            />
          );
        } else if (kind === "json") {
          field = <JsonField id={id} name={key} value={value} describedBy={helpId} onChange={(v) => set(key, v)} />;
        } else if (LONG_TEXT.has(key)) {
          field = <textarea id={id} name={key} rows={4} value={value ?? ""} placeholder={prop.default || ""} aria-describedby={helpId} onChange={(e) => set(key, e.target.value === "" ? undefined : e.target.value)} />;
        } else {
          const list = datalists[key];
          field = (
            <>
              <input
                id={id}
                name={key}
                type="text"
                list={list ? `${id}-list` : undefined}
                value={kind === "any" && value !== undefined && typeof value !== "string" ? JSON.stringify(value) : value ?? ""}
                placeholder={prop.default != null && prop.default !== "" ? String(prop.default) : ""}
                maxLength={prop.maxLength}
                aria-describedby={helpId}
                onChange={(e) => set(key, kind === "any" ? parseAny(e.target.value) : e.target.value === "" ? undefined : e.target.value)}
              />
              {list && (
                <datalist id={`${id}-list`}>
                  {list.map((option) => <option key={option} value={option} />)}
                </datalist>
              )}
            </>
          );
        }
        return (
          <div className={`field field-${kind}`} key={key}>
            <label htmlFor={id}>
              {key}
              {required.has(key) && <span className="required" aria-label="required"> *</span>}
            </label>
            {field}
            {prop.description && <small id={helpId}>{prop.description}</small>}
          </div>
        );
      })}
    </div>
  );
}
