#!/usr/bin/env python3
# make_golden.py: writes golden_logits.json, the data of reference_golden_test.
#
# What it is. An independent float64 re-implementation of the DeepSeek-V2/V3 forward
# (and of DeepSeek-V3's MTP module 0) in pure Python, written in the structure of
# Hugging Face's modeling_deepseek.py rather than that of model/reference/: whole
# sequences per layer with an explicit causal mask instead of one token at a time over
# a latent cache, q/k/v materialized per head (no weight absorption), RoPE as
# de-interleave + rotate_half with cos/sin = cat(freqs, freqs), routing as top-k over
# group-masked scores. A math mistake shared by the C++ reference's incremental and
# full-recompute paths is unlikely to be repeated here. It needs only the Python 3
# standard library (no numpy, no torch) and reads the checkpoints make_model writes:
# BF16/F16/F32 safetensors, one model.safetensors or shards + the index json.
#
# What it computes, per checkpoint and per scale (1 and SCALE = 16):
#   - the main model's logits at the last position of TOKENS;
#   - for a model with MTP (tiny-v3): MTP module 0's draft logits at the last pair of
#     the shifted sequence (h_0, TOKENS[1]), ..., (h_{n-1}, MTP_NEXT_TOKEN), where h_t is
#     the main model's final-normed hidden state at position t and pair t sits at
#     position t: x = eh_proj·[enorm(embed(token)) | hnorm(h)], then the MTP decoder
#     block, shared_head.norm and shared_head.head;
# and stores, for each logits vector, its argmax and the values of the NUM_TOP largest
# ids plus FIXED_IDS. It also stores a few raw weight values ("probes") so the test can
# tell a changed checkpoint generator from a changed forward.
#
# Scale 16 multiplies the tensors whose names end in one of SCALED_SUFFIXES by 16 as
# they are read (exact: a power of two). With make_model's N(0, 0.02) weights attention
# is almost uniform and the router almost indifferent, which would let position and
# routing mistakes through; ×16 on q, k, v and the router logits makes both decisive.
# The C++ test applies the same list (it checks the JSON's copy against its own).
#
# How to rerun (from the repository root; the script takes 10-30 s on one core):
#   bazel run //tools/make_model -- --preset=tiny-v2 --seed=20240601 --tokenizer= \
#       --out=/tmp/golden/tiny-v2
#   bazel run //tools/make_model -- --preset=tiny-v3 --seed=20240601 --tokenizer= \
#       --out=/tmp/golden/tiny-v3
#   python3 tests/unit/model/reference/golden/make_golden.py --seed=20240601 \
#       --out=tests/unit/model/reference/golden/golden_logits.json \
#       tiny-v2=/tmp/golden/tiny-v2 tiny-v3=/tmp/golden/tiny-v3
# --seed only records the seed the checkpoints were made with (the test rewrites them
# with it). `--check=FILE` instead compares a fresh computation with an existing golden
# file and exits 1 when any logits differ by more than 1e-5 relative.
#
# The golden values hold only while make_model is deterministic: same seed, same
# bytes. It is on one platform (tools/make_model's tests), but its Box-Muller uses
# float libm calls, so another libm could change a weight by an ulp; the probes then
# fail first and say so. Regenerate after any deliberate change to make_model's values.
import argparse
import array
import json
import math
import operator
import os
import re
import struct
import sys
import time

SCALE = 16
SCALED_SUFFIXES = [
    "self_attn.q_proj.weight",              # V2 queries (no q_lora)
    "self_attn.q_b_proj.weight",            # V3 queries (after q_a_layernorm)
    "self_attn.kv_a_proj_with_mqa.weight",  # k_pe (the c_kv part is re-normalized)
    "self_attn.kv_b_proj.weight",           # k_nope and v
    "mlp.gate.weight",                      # MoE router logits
]

# Token ids: some past 100000, to catch row/offset arithmetic in int32 or in the
# embedding and head; position 0 is BOS as in real prompts.
TOKENS = [0, 31415, 100003, 128000, 9, 117647]
MTP_NEXT_TOKEN = 104729
NUM_TOP = 32
# Spread over the whole vocabulary, both ends included.
FIXED_IDS = [0, 1, 2, 3, 17, 255, 1000, 4099, 8191, 12345, 20000, 27182, 31415, 40000,
             50000, 57721, 64000, 70001, 77777, 86400, 90001, 99999, 100000, 100003,
             104729, 110000, 117647, 120000, 125000, 128000, 128815, 129279]
# Discrete choices closer than this (routing scores, the argmax) could flip under the
# C++ reference's FP32 activations; the generator refuses to write such a golden.
MIN_DECISION_GAP = 1e-5
# The test's bound on max |Δ| / max |golden| (kTolerance there), used by --check.
TOLERANCE = 1e-5

mul = operator.mul


# ---------------------------------------------------------------- checkpoint reading

def bf16_to_f32(raw):
    """BF16 is the top half of an FP32: put two zero bytes below each value."""
    out = bytearray(2 * len(raw))
    out[2::4] = raw[0::2]
    out[3::4] = raw[1::2]
    values = array.array("f")
    values.frombytes(bytes(out))
    return values


def decode(raw, dtype):
    if dtype == "BF16":
        return bf16_to_f32(raw)
    if dtype == "F32":
        values = array.array("f")
        values.frombytes(raw)
        return values
    if dtype == "F16":
        return array.array("f", struct.unpack("<%de" % (len(raw) // 2), raw))
    raise ValueError("dtype %s not supported (FP8 checkpoints are out of scope)" % dtype)


class Tensor:
    """A row-major FP32 tensor: `data` holds rows * cols values (cols = 1 for 1-D)."""

    def __init__(self, shape, data):
        self.shape = shape
        self.rows = shape[0]
        self.cols = shape[1] if len(shape) == 2 else 1
        self.data = data

    def row(self, r):
        return self.data[r * self.cols:(r + 1) * self.cols]


class Checkpoint:
    """A safetensors checkpoint directory; tensors are read lazily and cached, except
    vocab-sized ones, which are read a few rows at a time (see rows())."""

    def __init__(self, directory, scale=1):
        self.dir = directory
        self.scale = scale
        with open(os.path.join(directory, "config.json")) as f:
            self.config = json.load(f)
        single = os.path.join(directory, "model.safetensors")
        if os.path.exists(single):
            files = ["model.safetensors"]
            weight_map = None
        else:
            with open(os.path.join(directory, "model.safetensors.index.json")) as f:
                weight_map = json.load(f)["weight_map"]
            files = sorted(set(weight_map.values()))
        self.where = {}  # name -> (path, data start, header entry)
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            for tensor, meta in header.items():
                if tensor == "__metadata__":
                    continue
                if weight_map is not None and weight_map.get(tensor) != name:
                    raise ValueError("%s: tensor %s not where the index says" % (path, tensor))
                self.where[tensor] = (path, 8 + n, meta)
        self.cache = {}

    def scaled(self, name):
        return self.scale != 1 and any(name.endswith(s) for s in SCALED_SUFFIXES)

    def raw_rows(self, name, first, count):
        """Rows [first, first + count) of a tensor, unscaled, as an FP32 array."""
        path, start, meta = self.where[name]
        shape = meta["shape"]
        cols = shape[1] if len(shape) == 2 else 1
        width = {"BF16": 2, "F16": 2, "F32": 4}[meta["dtype"]]
        begin = meta["data_offsets"][0]
        with open(path, "rb") as f:
            f.seek(start + begin + first * cols * width)
            return decode(f.read(count * cols * width), meta["dtype"])

    def get(self, name):
        if name not in self.cache:
            meta = self.where[name][2]
            data = self.raw_rows(name, 0, meta["shape"][0])
            if self.scaled(name):
                data = array.array("f", [v * self.scale for v in data])
            self.cache[name] = Tensor(meta["shape"], data)
        return self.cache[name]

    def row(self, name, r):
        assert not self.scaled(name)
        return list(self.raw_rows(name, r, 1))

    def probe(self, name, index):
        """One raw (unscaled) value by its row-major index."""
        shape = self.where[name][2]["shape"]
        cols = shape[1] if len(shape) == 2 else 1
        return self.raw_rows(name, index // cols, 1)[index % cols]


# ---------------------------------------------------------------- math (float64)

def linear(w, x):
    """y = W x for W: [out, in], in the nn.Linear convention."""
    c, d = w.cols, w.data
    assert len(x) == c
    return [sum(map(mul, d[r * c:(r + 1) * c], x)) for r in range(w.rows)]


def rms_norm(x, weight, eps):
    inv = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [v * inv * w for v, w in zip(x, weight.data)]


def silu(v):
    return v / (1.0 + math.exp(-v))


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def softmax(xs):
    top = max(xs)
    e = [math.exp(v - top) for v in xs]
    z = sum(e)
    return [v / z for v in e]


class Decisions:
    """The smallest gap seen between a chosen and a rejected routing candidate."""

    def __init__(self):
        self.min_gap = math.inf

    def topk(self, scores, k):
        """Indices of the k largest scores (ties: lower index first, as torch.topk on
        CPU happens to do; a tie closer than MIN_DECISION_GAP is refused anyway)."""
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        if k < len(scores) and scores[order[k]] != -math.inf:
            self.min_gap = min(self.min_gap, scores[order[k - 1]] - scores[order[k]])
        return order[:k]


# ---------------------------------------------------------------- the model

def yarn_get_mscale(scale, mscale):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


class RotaryEmbedding:
    """DeepseekV2YarnRotaryEmbedding (or plain RoPE without rope_scaling)."""

    def __init__(self, cfg):
        dim = cfg["qk_rope_head_dim"]
        base = cfg["rope_theta"]
        self.dim = dim
        freq_extra = [1.0 / base ** (i / dim) for i in range(0, dim, 2)]
        rs = cfg.get("rope_scaling")
        self.mscale = 1.0
        self.softmax_scale = (cfg["qk_nope_head_dim"] + dim) ** -0.5
        if not rs:
            self.inv_freq = freq_extra
            return
        assert rs.get("type", rs.get("rope_type")) == "yarn", rs
        factor = rs["factor"]
        original = rs["original_max_position_embeddings"]

        def correction_dim(num_rotations):
            return (dim * math.log(original / (num_rotations * 2 * math.pi))) / (
                2 * math.log(base))

        low = max(math.floor(correction_dim(rs.get("beta_fast", 32))), 0)
        high = min(math.ceil(correction_dim(rs.get("beta_slow", 1))), dim - 1)
        if low == high:
            high += 0.001
        ramp = [min(max((i - low) / (high - low), 0.0), 1.0) for i in range(dim // 2)]
        extra_mask = [1.0 - r for r in ramp]
        self.inv_freq = [f / factor * (1.0 - m) + f * m for f, m in zip(freq_extra, extra_mask)]
        self.mscale = yarn_get_mscale(factor, rs.get("mscale", 1)) / yarn_get_mscale(
            factor, rs.get("mscale_all_dim", 0))
        if rs.get("mscale_all_dim"):
            m = yarn_get_mscale(factor, rs["mscale_all_dim"])
            self.softmax_scale *= m * m

    def cos_sin(self, position):
        freqs = [position * f for f in self.inv_freq]
        emb = freqs + freqs
        return ([math.cos(e) * self.mscale for e in emb],
                [math.sin(e) * self.mscale for e in emb])


def rotate_half(x):
    half = len(x) // 2
    return [-v for v in x[half:]] + x[:half]


def apply_rotary_pos_emb(x, cos, sin):
    # The checkpoint's rope dims are interleaved pairs (x0, x1), (x2, x3), ...; HF's
    # DeepSeek code de-interleaves them into [x0, x2, ... | x1, x3, ...] first.
    x = x[0::2] + x[1::2]
    return [a * c + b * s for a, c, b, s in zip(x, cos, rotate_half(x), sin)]


class DeepseekModel:
    def __init__(self, ckpt):
        self.ckpt = ckpt
        self.cfg = ckpt.config
        self.rope = RotaryEmbedding(self.cfg)
        self.eps = self.cfg["rms_norm_eps"]
        self.v3 = self.cfg["model_type"] == "deepseek_v3"
        self.decisions = Decisions()

    def w(self, name):
        return self.ckpt.get(name)

    def norm(self, x, name):
        return rms_norm(x, self.w(name), self.eps)

    def mlp(self, p, x):
        gate = linear(self.w(p + "gate_proj.weight"), x)
        up = linear(self.w(p + "up_proj.weight"), x)
        return linear(self.w(p + "down_proj.weight"), [silu(g) * u for g, u in zip(gate, up)])

    def attention(self, p, hs, positions):
        """DeepseekV2Attention over a whole sequence with a causal mask."""
        cfg = self.cfg
        heads, nope, rope_dim = (cfg["num_attention_heads"], cfg["qk_nope_head_dim"],
                                 cfg["qk_rope_head_dim"])
        v_dim, rank = cfg["v_head_dim"], cfg["kv_lora_rank"]
        q_dim = nope + rope_dim
        queries, keys, values = [], [], []
        for h, pos in zip(hs, positions):
            if cfg.get("q_lora_rank"):
                q = linear(self.w(p + "q_b_proj.weight"),
                           self.norm(linear(self.w(p + "q_a_proj.weight"), h),
                                     p + "q_a_layernorm.weight"))
            else:
                q = linear(self.w(p + "q_proj.weight"), h)
            compressed = linear(self.w(p + "kv_a_proj_with_mqa.weight"), h)
            kv = linear(self.w(p + "kv_b_proj.weight"),
                        self.norm(compressed[:rank], p + "kv_a_layernorm.weight"))
            cos, sin = self.rope.cos_sin(pos)
            k_pe = apply_rotary_pos_emb(compressed[rank:], cos, sin)  # shared by all heads
            qs, ks, vs = [], [], []
            for head in range(heads):
                qh = q[head * q_dim:(head + 1) * q_dim]
                qs.append(qh[:nope] + apply_rotary_pos_emb(qh[nope:], cos, sin))
                kvh = kv[head * (nope + v_dim):(head + 1) * (nope + v_dim)]
                ks.append(kvh[:nope] + k_pe)
                vs.append(kvh[nope:])
            queries.append(qs)
            keys.append(ks)
            values.append(vs)
        out = []
        n = len(hs)
        for i in range(n):
            o = []
            for head in range(heads):
                # Causal mask: keys j > i are -inf before the softmax.
                scores = [sum(map(mul, queries[i][head], keys[j][head])) *
                          self.rope.softmax_scale if j <= i else -math.inf
                          for j in range(n)]
                probs = softmax(scores)
                o += [sum(probs[j] * values[j][head][d] for j in range(n))
                      for d in range(v_dim)]
            out.append(linear(self.w(p + "o_proj.weight"), o))
        return out

    def moe(self, p, x):
        """DeepseekV2MoE / DeepseekV3MoE with MoEGate, for one token."""
        cfg = self.cfg
        logits = linear(self.w(p + "gate.weight"), x)
        experts = len(logits)
        if cfg["scoring_func"] == "sigmoid":
            scores = [sigmoid(v) for v in logits]
        elif cfg["scoring_func"] == "softmax":
            scores = softmax(logits)
        else:
            raise ValueError(cfg["scoring_func"])
        method = cfg["topk_method"]
        groups = cfg["n_group"]
        per_group = experts // groups
        if method == "noaux_tc":
            bias = self.w(p + "gate.e_score_correction_bias").data
            choice = [s + b for s, b in zip(scores, bias)]
            group_scores = [sum(sorted(choice[g * per_group:(g + 1) * per_group])[-2:])
                            for g in range(groups)]
        elif method == "group_limited_greedy":
            choice = list(scores)
            group_scores = [max(choice[g * per_group:(g + 1) * per_group])
                            for g in range(groups)]
        elif method == "greedy":
            choice = list(scores)
            group_scores = None
        else:
            raise ValueError(method)
        if group_scores is not None:
            kept = set(self.decisions.topk(group_scores, cfg["topk_group"]))
            # Experts outside the kept groups can never be chosen (-inf, as DeepSeek's
            # own inference code masks; HF's 0.0 differs only when scores go negative).
            choice = [c if e // per_group in kept else -math.inf for e, c in enumerate(choice)]
        k = cfg["num_experts_per_tok"]
        chosen = self.decisions.topk(choice, k)
        weights = [scores[e] for e in chosen]  # bias steers the choice, not the weight
        if k > 1 and cfg["norm_topk_prob"]:
            total = sum(weights) + 1e-20
            weights = [v / total for v in weights]
            if self.v3:
                weights = [v * cfg["routed_scaling_factor"] for v in weights]
        else:
            weights = [v * cfg["routed_scaling_factor"] for v in weights]
        out = [0.0] * len(x)
        for e, weight in zip(chosen, weights):
            y = self.mlp(p + "experts.%d." % e, x)
            out = [o + weight * v for o, v in zip(out, y)]
        if cfg.get("n_shared_experts"):
            out = [o + v for o, v in zip(out, self.mlp(p + "shared_experts.", x))]
        return out

    def decoder_layer(self, index, hs, positions):
        cfg = self.cfg
        p = "model.layers.%d." % index
        normed = [self.norm(h, p + "input_layernorm.weight") for h in hs]
        attn = self.attention(p + "self_attn.", normed, positions)
        hs = [[a + b for a, b in zip(h, o)] for h, o in zip(hs, attn)]
        is_moe = (cfg.get("n_routed_experts") and index >= cfg["first_k_dense_replace"] and
                  index % cfg["moe_layer_freq"] == 0)
        out = []
        for h in hs:
            x = self.norm(h, p + "post_attention_layernorm.weight")
            y = self.moe(p + "mlp.", x) if is_moe else self.mlp(p + "mlp.", x)
            out.append([a + b for a, b in zip(h, y)])
        return out

    def forward(self, tokens):
        """The final-normed hidden state of every position."""
        hs = [self.ckpt.row("model.embed_tokens.weight", t) for t in tokens]
        positions = list(range(len(tokens)))
        for layer in range(self.cfg["num_hidden_layers"]):
            hs = self.decoder_layer(layer, hs, positions)
        return [self.norm(h, "model.norm.weight") for h in hs]

    def mtp_forward(self, hidden, next_tokens):
        """MTP module 0 over the pairs (hidden[t], next_tokens[t]) at positions t; the
        shared_head-normed state of every pair."""
        index = self.cfg["num_hidden_layers"]
        p = "model.layers.%d." % index
        xs = []
        for h, t in zip(hidden, next_tokens):
            e = self.norm(self.ckpt.row(p + "embed_tokens.weight", t), p + "enorm.weight")
            xs.append(linear(self.w(p + "eh_proj.weight"), e + self.norm(h, p + "hnorm.weight")))
        xs = self.decoder_layer(index, xs, list(range(len(xs))))
        return [self.norm(x, p + "shared_head.norm.weight") for x in xs]

    def logits(self, head_name, h, chunk_rows=2048):
        """All vocab logits of one state, reading the head a chunk of rows at a time."""
        rows = self.ckpt.where[head_name][2]["shape"][0]
        cols = len(h)
        out = []
        for first in range(0, rows, chunk_rows):
            count = min(chunk_rows, rows - first)
            data = self.ckpt.raw_rows(head_name, first, count)
            out += [sum(map(mul, data[r * cols:(r + 1) * cols], h)) for r in range(count)]
        return out


# ---------------------------------------------------------------- golden records

def summarize(logits):
    order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))
    top = order[:NUM_TOP]
    ids = top + [i for i in FIXED_IDS if i not in top]
    largest = max(abs(v) for v in logits)
    margin = (logits[order[0]] - logits[order[1]]) / largest
    return {"argmax": order[0], "ids": ids, "values": [logits[i] for i in ids]}, margin


def probes(ckpt):
    cfg = ckpt.config
    hidden = cfg["hidden_size"]
    picks = [("model.embed_tokens.weight", TOKENS[2] * hidden + 5),
             ("model.layers.0.self_attn.kv_b_proj.weight", 123),
             ("model.layers.1.mlp.gate.weight", 7),
             ("model.layers.2.mlp.experts.3.down_proj.weight", 4321),
             ("lm_head.weight", cfg["vocab_size"] * hidden - 1)]
    if cfg.get("num_nextn_predict_layers"):
        mtp = "model.layers.%d." % cfg["num_hidden_layers"]
        picks += [("model.layers.1.mlp.gate.e_score_correction_bias", 3),
                  (mtp + "eh_proj.weight", 1000),
                  (mtp + "shared_head.head.weight", TOKENS[3] * hidden + 7)]
    return [{"tensor": name, "index": index, "value": ckpt.probe(name, index)}
            for name, index in picks]


def compute_case(preset, directory, scale):
    """The golden record of one checkpoint and scale, and the full logits vectors."""
    start = time.time()
    ckpt = Checkpoint(directory, scale)
    model = DeepseekModel(ckpt)
    case = {"preset": preset, "scale": scale, "probes": probes(ckpt)}
    hidden = model.forward(TOKENS)
    full = {"logits": model.logits("lm_head.weight", hidden[-1])}
    case["logits"], margin = summarize(full["logits"])
    margins = [margin]
    if ckpt.config.get("num_nextn_predict_layers"):
        drafts = model.mtp_forward(hidden, TOKENS[1:] + [MTP_NEXT_TOKEN])
        head = "model.layers.%d.shared_head.head.weight" % ckpt.config["num_hidden_layers"]
        full["mtp_logits"] = model.logits(head, drafts[-1])
        case["mtp_logits"], margin = summarize(full["mtp_logits"])
        margins.append(margin)
    # None when no routing decision was made (a dense model): JSON has no infinity.
    gap = model.decisions.min_gap
    case["min_routing_gap"] = gap if gap != math.inf else None
    case["min_argmax_margin"] = min(margins)
    print("%s x%d: argmax %d%s, min routing gap %.3g, argmax margin %.3g (%.0f s)" % (
        preset, scale, case["logits"]["argmax"],
        ", mtp argmax %d" % case["mtp_logits"]["argmax"] if "mtp_logits" in case else "",
        gap, case["min_argmax_margin"], time.time() - start),
        file=sys.stderr)
    return case, full


def relative_error(golden, logits):
    """The test's measure: max |logits - golden| / max |golden| over the golden ids."""
    diff = max(abs(logits[i] - v) for i, v in zip(golden["ids"], golden["values"]))
    return diff / max(abs(v) for v in golden["values"])


def main():
    parser = argparse.ArgumentParser(
        description="Golden logits for reference_golden_test (see this file's header).")
    parser.add_argument("checkpoints", nargs="+", metavar="PRESET=DIR",
                        help="a make_model checkpoint and the preset it was made from")
    parser.add_argument("--seed", type=int, help="the --seed given to make_model")
    parser.add_argument("--scales", default="1,%d" % SCALE)
    parser.add_argument("--out", help="write the golden JSON here")
    parser.add_argument("--check", help="compare with this golden JSON instead")
    args = parser.parse_args()
    assert sys.byteorder == "little", "safetensors are little-endian; so must the host be"
    scales = [int(s) for s in args.scales.split(",")]
    assert all(s in (1, SCALE) for s in scales), "the test knows scales 1 and %d" % SCALE

    cases, fulls = [], []
    for item in args.checkpoints:
        preset, directory = item.split("=", 1)
        for scale in scales:
            case, full = compute_case(preset, directory, scale)
            cases.append(case)
            fulls.append(full)

    if args.check:
        with open(args.check) as f:
            golden = json.load(f)
        worst = 0.0
        for case, full in zip(cases, fulls):
            for old in golden["cases"]:
                if (old["preset"], old["scale"]) != (case["preset"], case["scale"]):
                    continue
                for key in ("logits", "mtp_logits"):
                    if key not in old:
                        continue
                    err = relative_error(old[key], full[key])
                    same = old[key]["argmax"] == case[key]["argmax"]
                    worst = max(worst, err if same else math.inf)
                    print("%s x%d %s: relative error %.3g, argmax %d vs %d" % (
                        case["preset"], case["scale"], key, err, old[key]["argmax"],
                        case[key]["argmax"]))
        return 0 if worst <= TOLERANCE else 1

    for case in cases:
        gap = case["min_routing_gap"]
        if (gap is not None and gap < MIN_DECISION_GAP) or \
                case["min_argmax_margin"] < MIN_DECISION_GAP:
            print("%s x%d: a decision is too close to call; pick other TOKENS" % (
                case["preset"], case["scale"]), file=sys.stderr)
            return 1
    if args.seed is None:
        parser.error("--seed is required to write a golden file")
    golden = {
        "about": "Generated by make_golden.py in this directory; do not edit by hand.",
        "seed": args.seed,
        "dtype": "bf16",
        "scaled_suffixes": SCALED_SUFFIXES,
        "tokens": TOKENS,
        "mtp_next_token": MTP_NEXT_TOKEN,
        "cases": cases,
    }
    # Indented, but each list of numbers on one line.
    text = re.sub(r"\[\s*([-+0-9.e,\s]+?)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
                  json.dumps(golden, indent=1)) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
