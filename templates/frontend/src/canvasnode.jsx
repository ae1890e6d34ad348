// A drawn node: one element with data-node-id and data-status (DESIGN.md "Pages"), its ports
// as React Flow handles named by port, its streamed or final text, its validation errors.
import { createContext, memo, useContext, useEffect } from "react";
import { Handle, Position, useUpdateNodeInternals } from "@xyflow/react";
import { portsOf } from "./ports.js";
import { formatDuration } from "./api.js";

export const TypesContext = createContext({});
export const RunContext = createContext({ nodes: {} });
export const ErrorsContext = createContext({});

function summary(type, config) {
  config = config || {};
  if (type === "input" || type === "output") return config.name || "";
  if (type === "llm") return [config.provider, config.model].filter(Boolean).join(" · ");
  if (type === "template") return config.template || "";
  if (type === "text") return config.text || "";
  if (type === "http") return `${config.method || "GET"} ${config.url || ""}`;
  if (type === "extract") return config.path || "";
  if (type === "condition") return `${config.operator || "equals"} ${config.operand ?? ""}`;
  return "";
}

function CanvasNode({ id, data, selected }) {
  const types = useContext(TypesContext);
  const run = useContext(RunContext).nodes[id] || {};
  const errors = useContext(ErrorsContext)[id];
  const nodeType = types[data.type];
  const { inputs, outputs } = portsOf(nodeType, data.config);
  const updateNodeInternals = useUpdateNodeInternals();
  const portKey = inputs.map((p) => p.name).join(",") + "|" + outputs.map((p) => p.name).join(",");
  useEffect(() => updateNodeInternals(id), [id, portKey, updateNodeInternals]);
  const status = run.status || "";
  const time = run.run ? formatDuration(run.run.started_at, run.run.finished_at) : "";
  const rows = Math.max(inputs.length, outputs.length);
  return (
    <div
      className={`cnode type-${data.type}${status ? ` status-${status}` : ""}${errors ? " invalid" : ""}${selected ? " selected" : ""}`}
      data-node-id={id}
      data-status={status}
      data-type={data.type}
      data-invalid={errors ? "true" : undefined}
      aria-label={`${nodeType?.label || data.type} node ${data.label || summary(data.type, data.config)}`}
    >
      <div className="cnode-head">
        <span className="cnode-type">{nodeType?.label || data.type}</span>
        {status && <span className={`badge status-${status}`}>{status}{run.attempt > 1 ? ` (attempt ${run.attempt})` : ""}</span>}
      </div>
      {(data.label || summary(data.type, data.config)) && (
        <div className="cnode-title" title={summary(data.type, data.config)}>
          {data.label || summary(data.type, data.config)}
        </div>
      )}
      <div className="cnode-ports">
        {Array.from({ length: rows }, (_, i) => (
          <div className="port-row" key={i}>
            <div className="port in">
              {inputs[i] && (
                <>
                  <Handle type="target" position={Position.Left} id={inputs[i].name} className={`ptype-${inputs[i].type}`} />
                  <span title={`${inputs[i].type}${inputs[i].required ? "" : ", optional"}`}>{inputs[i].name}</span>
                </>
              )}
            </div>
            <div className="port out">
              {outputs[i] && (
                <>
                  <span title={outputs[i].type}>{outputs[i].name}</span>
                  <Handle type="source" position={Position.Right} id={outputs[i].name} className={`ptype-${outputs[i].type}`} />
                </>
              )}
            </div>
          </div>
        ))}
      </div>
      {run.text !== undefined && run.text !== "" && (
        <div className={`cnode-text nowheel${run.missedStart ? " missed-start" : ""}`} title={run.missedStart ? "The first tokens streamed before this page listened; the whole text shows when the node completes." : undefined}>
          {run.text}
        </div>
      )}
      {run.error && <div className="cnode-error" role="status">{run.error}</div>}
      {time && <div className="cnode-time">{time}</div>}
      {errors && (
        <ul className="cnode-errors">
          {errors.map((e, i) => (
            <li key={i}>{e.field ? `${e.field}: ` : ""}{e.message}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

export const nodeTypes = { canvas: memo(CanvasNode) };

export function docToFlow(doc) {
  return {
    nodes: doc.nodes.map((n) => ({
      id: n.id,
      type: "canvas",
      position: n.position || { x: 0, y: 0 },
      data: { type: n.type, label: n.label || "", config: n.config || {} },
    })),
    edges: doc.edges.map((e) => ({
      id: e.id,
      source: e.source,
      sourceHandle: e.source_port,
      target: e.target,
      targetHandle: e.target_port,
    })),
  };
}

export function flowToDoc(nodes, edges) {
  return {
    nodes: nodes.map((n) => ({
      id: n.id,
      type: n.data.type,
      label: n.data.label || "",
      position: { x: Math.round(n.position.x), y: Math.round(n.position.y) },
      config: n.data.config || {},
    })),
    edges: edges.map((e) => ({
      id: e.id,
      source: e.source,
      source_port: e.sourceHandle,
      target: e.target,
      target_port: e.targetHandle,
    })),
  };
}
