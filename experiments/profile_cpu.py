"""Where a backbone's train and eval steps spend their time on this machine (issue 20, item 1).

    python experiments/profile_cpu.py                                    # every backbone, 64 px, batch 32
    python experiments/profile_cpu.py --models=resnet18,alexnet --crop_size=224 --steps=2
    taskset -c 0 python experiments/profile_cpu.py --models=resnet18     # on one core

It builds the trainer's own jitted steps the way the benchmark does (`bench.jax_side.JaxBench`:
on-device input, the paper's augmentation inside the train step), runs a few of each under
`jax.profiler.trace`, and reads the trace's per-thunk events (XLA:CPU names each event after its
HLO instruction). Each instruction is looked up in the compiled HLO of its step and put in a
category: forward and backward convolutions (by shape), depthwise convolutions (XLA's grouped
convolution, or `layers.DepthwiseConv`'s shifted multiply-adds), matmuls (dense, attention),
normalisation, pooling, input (gathers of the augmentation), layout changes (transpose, copy),
reductions, elementwise. Times are summed over threads, so on a busy machine
read the shares, not the milliseconds; the load average is printed beside them.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_list(
    "models", ["alexnet", "resnet18", "resnet50", "convnext_tiny", "vit_b_16", "efficientnet_lite0"], "backbones"
)
flags.DEFINE_integer("crop_size", 64, "crop side in pixels (the resident images are 1/8 larger)")
flags.DEFINE_integer("batch_size", 32, "images per step")
flags.DEFINE_integer("steps", 3, "traced steps of each kind (after one untraced warm-up step)")
flags.DEFINE_integer("top", 8, "individual instructions listed per step")
flags.DEFINE_bool("single_thread", False, "--xla_cpu_multi_thread_eigen=false (a true one-core run: taskset -c 0)")
flags.DEFINE_string("dump_hlo", None, "folder to write each step's compiled HLO text to (for reading the op names)")
flags.DEFINE_enum("which", "both", ["both", "train", "eval"], "which step to profile")

# Flax scopes of the normalisation layers (BatchNorm_0, norm, bn1, ln_1 ...); unnamed ones show by their rsqrt.
NORM_NAMES = re.compile(r"[Nn]orm|/bn\d*/|/ln(?:_\d)?/")
DEPTHWISE_NAMES = re.compile(r"Depthwise|/conv_dw/")  # layers.DepthwiseConv, as the models name it
CONTROL = {"while", "conditional", "call"}  # their bodies' thunks are traced on their own
LAYOUT = {"transpose", "copy", "bitcast", "reshape", "parameter", "broadcast", "constant", "slice", "concatenate"}
LAYOUT |= {"pad", "reverse"}
INPUT = {"gather", "scatter", "rng-bit-generator", "rng", "sort", "dynamic-slice", "dynamic-update-slice"}
POOL = {"reduce-window", "select-and-scatter"}


@dataclasses.dataclass
class Instr:
    name: str
    opcode: str
    shape: str
    line: str
    calls: list[str]
    users: list[Instr] = dataclasses.field(default_factory=list)

    def operands(self) -> list[str]:
        args = self.line.split(f"{self.opcode}(", 1)[1].split(")", 1)[0] if f"{self.opcode}(" in self.line else ""
        return [a.strip().lstrip("%") for a in args.split(",") if a.strip()]


def parse_hlo(text: str) -> tuple[dict[str, Instr], dict[str, list[Instr]]]:
    """Every instruction by name, and every computation's instructions, from HLO text."""
    instrs: dict[str, Instr] = {}
    comps: dict[str, list[Instr]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{$", line)
        if head and " = " not in line.split("{")[0]:
            current = comps.setdefault(head.group(1), [])
            continue
        if line == "}":
            current = None
            continue
        m = re.match(r"^(?:ROOT\s+)?%?([\w.\-]+) = (.*)$", line)
        if not m or current is None:
            continue
        name, rest = m.groups()
        if rest.startswith("("):  # a tuple shape: skip to its closing parenthesis
            depth = 0
            end = 0
            for end, ch in enumerate(rest):  # noqa: B007 - `end` is read after the loop
                depth += ch == "("
                depth -= ch == ")"
                if depth == 0:
                    break
            shape, tail = rest[: end + 1], rest[end + 1 :].strip()
        else:
            shape, _, tail = rest.partition(" ")
        op = re.match(r"([a-z][\w\-]*)\(", tail)
        calls = re.findall(r"(?:calls|to_apply|body|condition|branch_computations)=\{?%?([\w.\-]+)", tail)
        instr = Instr(name, op.group(1) if op else "?", shape, line, calls)
        instrs[name] = instr
        current.append(instr)
    for instr in instrs.values():
        for operand in instr.operands():
            if operand in instrs:
                instrs[operand].users.append(instr)
    return instrs, comps


def _inside(instr: Instr, comps: dict[str, list[Instr]]) -> list[Instr]:
    """The instruction and everything its fused computations hold."""
    out, todo = [instr], list(instr.calls)
    while todo:
        for inner in comps.get(todo.pop(), []):
            out.append(inner)
            todo.extend(inner.calls)
    return out


def _op_name(instr: Instr) -> str:
    m = re.search(r'op_name="([^"]*)"', instr.line)
    return m.group(1) if m else ""


def _operand_shapes(instr: Instr, instrs: dict[str, Instr]) -> list[str]:
    """The shapes of an instruction's first two operands, looked up by name."""
    names = instr.operands()[:2]
    return [instrs[n].shape for n in names if n in instrs and "[" in instrs[n].shape]


def _dims(shape: str) -> str:
    return shape[shape.index("[") + 1 : shape.index("]")].replace(",", "x")


def categorise(instr: Instr, instrs: dict[str, Instr], comps: dict[str, list[Instr]]) -> tuple[str, str]:
    """(category, label with shapes) of one traced instruction."""
    inner = _inside(instr, comps)
    opcodes = {i.opcode for i in inner}
    names = " ".join(_op_name(i) for i in inner)
    backward = "transpose(" in names
    direction = "bwd" if backward else "fwd"
    convs = [i for i in inner if i.opcode == "convolution"]
    if convs:
        conv = convs[0]
        groups = re.search(r"(?:feature|batch)_group_count=(\d+)", conv.line)
        window = re.search(r"window=\{size=([\dx]+)", conv.line)
        labels = re.search(r"dim_labels=(\S+?)[,}]?(?:\s|$)", conv.line)
        ins = " * ".join(_dims(s) for s in _operand_shapes(conv, instrs))
        label = f"{ins} -> {_dims(conv.shape)} win {window.group(1) if window else '-'}"
        if labels and labels.group(1).rstrip(",") != "b01f_01io->b01f":
            label += f" {labels.group(1).rstrip(',')}"
        if not _op_name(conv):  # XLA's weight-gradient rewrites drop the metadata; forward ones keep it
            direction = "bwd"
            label += " (weight grad)"
            # A depthwise kernel's gradient as a dense C x C convolution whose diagonal a user keeps.
            diagonal = any({"iota", "compare", "select"} <= {i.opcode for i in _inside(u, comps)} for u in instr.users)
            if diagonal:
                return "depthwise conv bwd", label + ", dense CxC then diagonal"
        if groups and int(groups.group(1)) > 1:
            return f"depthwise conv {direction}", label
        return f"conv {direction}", label
    dots = [i for i in inner if i.opcode == "dot"]
    if dots:
        kind = "attention" if re.search(r"[Aa]ttention|attn", names) else "dense"
        ins = " * ".join(_dims(s) for s in _operand_shapes(dots[0], instrs))
        return f"matmul {kind} {direction}", f"{ins} -> {_dims(dots[0].shape)}"
    shape = _dims(instr.shape) if "[" in instr.shape else instr.shape[:40]
    if DEPTHWISE_NAMES.search(names):  # layers.DepthwiseConv written as shifted multiply-adds (and its custom gradient)
        return f"depthwise shifted {direction}", f"{instr.opcode} {shape}"
    diagonal_of = [instrs[o] for o in instr.operands() if o in instrs]
    if {"iota", "compare", "select"} <= opcodes and any(
        "convolution" in {i.opcode for i in _inside(o, comps)} for o in diagonal_of
    ):
        return "depthwise conv bwd", f"diagonal of {shape}"
    if opcodes - {"fusion"} <= LAYOUT or instr.name.startswith(("transpose", "copy")):
        return "layout (transpose, copy)", f"{instr.opcode} {shape}"
    if NORM_NAMES.search(names) or "rsqrt" in opcodes:
        return "normalisation", f"{instr.opcode} {shape}"
    if opcodes & POOL:
        return "pooling", f"{instr.opcode} {shape}"
    # The model's own ops are named under jvp( / transpose( or a flax module (a capital letter);
    # the rest of a step is the input's augmentation and random numbers, the loss, the metrics, the update.
    where = "model" if re.search(r"jit\([^)]*\)/(?:jvp\(|transpose\(|[A-Z])", names) else "loss, metrics, optimizer"
    if opcodes & INPUT or (where != "model" and re.search(r"preprocess|augment|_randint|_uniform|_threefry", names)):
        return "input (augment, gather, rng)", f"{instr.opcode} {shape}"
    if "reduce" in opcodes:
        return f"reduction ({where})", f"{instr.opcode} {shape}"
    return f"elementwise ({where})", f"{instr.opcode} {shape}"


def trace_events(trace_dir: str) -> list[dict]:
    """The thunk events (those naming an HLO instruction) of the newest trace under trace_dir."""
    paths = sorted(glob.glob(os.path.join(trace_dir, "plugins/profile/*/*.trace.json.gz")))
    with gzip.open(paths[-1]) as f:
        data = json.load(f)
    return [e for e in data["traceEvents"] if e.get("ph") == "X" and "hlo_op" in (e.get("args") or {})]


def profile_step(label: str, call, steps: int, compiled_text: str, top: int) -> None:
    """Run `call` once untraced, then `steps` times traced; print the category table and top ops."""
    import jax

    jax.block_until_ready(call())
    if flags.FLAGS.dump_hlo:
        os.makedirs(flags.FLAGS.dump_hlo, exist_ok=True)
        with open(os.path.join(flags.FLAGS.dump_hlo, label.replace(" ", "_") + ".hlo.txt"), "w") as out:
            out.write(compiled_text)
    instrs, comps = parse_hlo(compiled_text)
    module = re.search(r"HloModule\s+([\w.\-]+)", compiled_text).group(1)
    with tempfile.TemporaryDirectory() as trace_dir:
        t0 = time.perf_counter()
        with jax.profiler.trace(trace_dir):
            for _ in range(steps):
                jax.block_until_ready(call())
        wall = (time.perf_counter() - t0) / steps
        events = [e for e in trace_events(trace_dir) if e["args"].get("hlo_module") == module]
    by_cat: dict[str, float] = collections.Counter()
    by_op: dict[tuple[str, str, str], float] = collections.Counter()
    unknown = 0.0
    for e in events:
        instr = instrs.get(e["args"]["hlo_op"])
        if instr is None:
            unknown += e["dur"]
            continue
        if instr.opcode in CONTROL:
            continue
        cat, what = categorise(instr, instrs, comps)
        by_cat[cat] += e["dur"]
        by_op[(cat, instr.name, what)] += e["dur"]
    total = sum(by_cat.values()) + unknown
    ms = 1e-3 / steps
    print(f"\n### {label}: {1000 * wall:.1f} ms/step wall (traced), {total * ms:.1f} ms/step in thunks")
    print("| category | ms/step | share |\n|---|---:|---:|")
    for cat, dur in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        print(f"| {cat} | {dur * ms:.1f} | {100 * dur / total:.1f} % |")
    if unknown:
        print(f"| (not in the HLO) | {unknown * ms:.1f} | {100 * unknown / total:.1f} % |")
    print(f"\ntop {top} instructions:\n| instruction | category | shapes | ms/step | share |\n|---|---|---|---:|---:|")
    for (cat, name, what), dur in by_op.most_common(top):
        print(f"| {name} | {cat} | {what} | {dur * ms:.1f} | {100 * dur / total:.1f} % |")
    by_shape: dict[tuple[str, str], float] = collections.Counter()
    for (cat, _, what), dur in by_op.items():
        if "conv" in cat or "matmul" in cat:
            by_shape[(cat, what)] += dur
    print(f"\nconvolutions and matmuls by shape (top {top}):")
    print("| category | shapes | ms/step | share |\n|---|---|---:|---:|")
    for (cat, what), dur in sorted(by_shape.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| {cat} | {what} | {dur * ms:.1f} | {100 * dur / total:.1f} % |")
    sys.stdout.flush()


def profile_model(model: str, f) -> None:
    import jax

    from alexnet_jax import seeds
    from alexnet_jax.bench.jax_side import JaxBench
    from alexnet_jax.bench.settings import Settings
    from alexnet_jax.bench.workload import synthetic_images

    image_size = f.crop_size + f.crop_size // 8
    settings = Settings(
        model=model,
        batch_size=f.batch_size,
        image_size=image_size,
        crop_size=f.crop_size,
        num_images=4 * f.batch_size,
        steps=f.steps,
        warmup=1,
    )
    images, labels = synthetic_images(settings.num_images, image_size, settings.seed)
    bench = JaxBench(settings, images, labels)
    t0 = time.perf_counter()
    pipeline, train_step, eval_step, state, _ = bench.build("on_device", "float32")
    batch = next(iter(pipeline.batches(bench.order(f.batch_size, 1), f.batch_size, train=True, seed=0)))
    key = jax.random.key(0)
    print(f"\n## {model}, {f.crop_size} px crops, batch {f.batch_size} (load {os.getloadavg()[0]:.2f})")
    if f.which in ("both", "eval"):
        eval_totals = bench.zero_totals(train=False)
        key_eval = seeds.step_key(key, seeds.TEST, 0, 0)
        text = eval_step.lower(state, pipeline.resident, batch, key_eval, eval_totals).compile().as_text()
        holder = {"totals": eval_totals}

        def eval_call():
            holder["totals"], predictions = eval_step(state, pipeline.resident, batch, key_eval, holder["totals"])
            return predictions

        profile_step(f"{model} eval step", eval_call, f.steps, text, f.top)
    if f.which in ("both", "train"):
        totals = bench.zero_totals()
        key_train = seeds.step_key(key, seeds.TRAIN, 0, 0)
        text = train_step.lower(state, pipeline.resident, batch, key_train, totals, 0).compile().as_text()
        holder = {"carry": (state, totals)}

        def train_call():
            state, totals = holder["carry"]
            holder["carry"] = train_step(state, pipeline.resident, batch, key_train, totals, 0)
            return holder["carry"]

        profile_step(f"{model} train step", train_call, f.steps, text, f.top)
    print(f"\n({model}: {time.perf_counter() - t0:.0f} s with compilation; load {os.getloadavg()[0]:.2f})")


def main(argv):
    del argv
    f = flags.FLAGS
    if f.single_thread:  # before JAX starts: XLA reads its flags once
        os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    import flax
    import jax

    import alexnet_jax

    xla_flags = os.environ.get("XLA_FLAGS", "")
    print(f"jax {jax.__version__}, flax {flax.__version__}, {os.cpu_count()} cores, XLA_FLAGS={xla_flags!r}")
    print(f"alexnet_jax from {os.path.dirname(alexnet_jax.__file__)}")
    print(f"uptime: {os.popen('uptime').read().strip()}")
    for model in f.models:
        profile_model(model, f)


if __name__ == "__main__":
    app.run(main)
