// A node's ports as the API derives them (docs/api.md "Node types"): the type's static ports
// plus, for types with dynamic inputs, one `any` port per {placeholder} of its config.

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET = /^secret:[A-Za-z0-9_.-]{1,200}$/;

// The {name} placeholders of a text, in order, without duplicates; {{ and }} are literal
// braces; anything else in braces is ignored here (the API reports it when saving).
export function placeholders(text, { allowSecrets = false } = {}) {
  const names = [];
  if (typeof text !== "string") return names;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "{" && text[i + 1] === "{") {
      i += 2;
    } else if (c === "}" && text[i + 1] === "}") {
      i += 2;
    } else if (c === "{") {
      const end = text.indexOf("}", i + 1);
      if (end < 0) break;
      const content = text.slice(i + 1, end);
      // {secret:NAME} in an http header names a stored key: not a variable.
      const secret = allowSecrets && SECRET.test(content);
      if (!secret && IDENTIFIER.test(content) && !names.includes(content)) names.push(content);
      i = end + 1;
    } else {
      i += 1;
    }
  }
  return names;
}

function dynamicInputs(type, config) {
  config = config || {};
  if (type === "template") return placeholders(config.template);
  if (type === "http") {
    const names = [];
    const add = (list) => list.forEach((n) => names.includes(n) || names.push(n));
    add(placeholders(config.url));
    for (const value of Object.values(config.headers || {})) add(placeholders(value, { allowSecrets: true }));
    add(placeholders(config.body));
    return names;
  }
  return [];
}

export function portsOf(nodeType, config) {
  if (!nodeType) return { inputs: [], outputs: [] };
  const inputs = [...nodeType.inputs];
  if (nodeType.dynamic_inputs) {
    for (const name of dynamicInputs(nodeType.type, config)) {
      if (!inputs.some((p) => p.name === name)) inputs.push({ name, type: "any", required: true, description: "Placeholder variable." });
    }
  }
  return { inputs, outputs: nodeType.outputs };
}

export function compatible(a, b) {
  return a === "any" || b === "any" || a === b;
}

// Why the API would refuse an edge from source.sourcePort to target.targetPort, or null.
export function connectionProblem({ source, sourceHandle, target, targetHandle }, nodes, edges, types) {
  if (!source || !target || !sourceHandle || !targetHandle) return "Connect an output to an input.";
  if (source === target) return "A node cannot feed itself.";
  const src = nodes.find((n) => n.id === source);
  const dst = nodes.find((n) => n.id === target);
  if (!src || !dst) return "Unknown node.";
  const out = portsOf(types[src.data.type], src.data.config).outputs.find((p) => p.name === sourceHandle);
  const inp = portsOf(types[dst.data.type], dst.data.config).inputs.find((p) => p.name === targetHandle);
  if (!out || !inp) return "Unknown port.";
  if (!compatible(out.type, inp.type)) return `A ${out.type} output cannot feed a ${inp.type} input.`;
  if (edges.some((e) => e.target === target && e.targetHandle === targetHandle)) return `Input '${targetHandle}' is already connected.`;
  // A cycle: can the target already reach the source?
  const next = new Map();
  for (const e of edges) next.set(e.source, [...(next.get(e.source) || []), e.target]);
  const seen = new Set();
  const stack = [target];
  while (stack.length) {
    const id = stack.pop();
    if (id === source) return "That edge would make a cycle.";
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(next.get(id) || []));
  }
  return null;
}
