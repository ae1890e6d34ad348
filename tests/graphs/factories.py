"""Graph documents for tests and the benchmark: small readable ones and a large valid one."""

import uuid


def node(type_, config=None, *, label="", node_id=None, x=0.0, y=0.0):
    return {
        "id": str(node_id or uuid.uuid4()),
        "type": type_,
        "label": label,
        "position": {"x": x, "y": y},
        "config": config or {},
    }


def edge(source, source_port, target, target_port, *, edge_id=None):
    return {
        "id": str(edge_id or uuid.uuid4()),
        "source": source["id"] if isinstance(source, dict) else str(source),
        "source_port": source_port,
        "target": target["id"] if isinstance(target, dict) else str(target),
        "target_port": target_port,
    }


def haiku_document(name="Haiku"):
    """input → template → llm → output; valid and complete."""
    topic = node("input", {"name": "topic"}, label="Topic")
    prompt = node("template", {"template": "A haiku about {topic}."}, label="Prompt")
    llm = node("llm", {"provider": "ollama", "model": "llama3.2:1b"}, label="Model")
    out = node("output", {"name": "haiku"}, label="Haiku")
    return {
        "name": name,
        "description": "demo",
        "nodes": [topic, prompt, llm, out],
        "edges": [
            edge(topic, "value", prompt, "topic"),
            edge(prompt, "text", llm, "prompt"),
            edge(llm, "text", out, "value"),
        ],
    }


def large_document(nodes=1000, edges=2000, name="Large"):
    """A valid acyclic graph of exactly ``nodes`` nodes and ``edges`` edges.

    Two text nodes start it; every later node is a template fed by its two predecessors
    ({a}, {b}); the first few also take a third input {c} from three back, until the edge
    count is reached.
    """
    extra = edges - 2 * (nodes - 2)
    if not 0 <= extra <= nodes - 3:
        raise ValueError("cannot build that shape")
    docs = [node("text", {"text": "seed"}, x=0, y=0), node("text", {"text": "seed"}, x=0, y=100)]
    links = []
    for i in range(2, nodes):
        with_c = 3 <= i < 3 + extra
        template = "{a} {b} {c}" if with_c else "{a} {b}"
        docs.append(node("template", {"template": template}, x=i * 10.0, y=(i % 7) * 50.0))
        port_a = "text"
        links.append(edge(docs[i - 1], port_a, docs[i], "a"))
        links.append(edge(docs[i - 2], "text", docs[i], "b"))
        if with_c:
            links.append(edge(docs[i - 3], "text", docs[i], "c"))
    return {"name": name, "description": "", "nodes": docs, "edges": links}
