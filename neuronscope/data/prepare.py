"""Prepare a dataset once for a model: read any supported files, add the benign corpus, render the prompt format.

The result is written in the world format (`neuronscope prepare --out DIR`), so every command and the experiment
grid read prepared FaithUn or TOFU data exactly like the embedded world. A chat-formatted dataset is specific to
the tokenizer whose chat template rendered it (recorded in world.json as ``chat_tokenizer``).
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from neuronscope.data.formats import load_dataset
from neuronscope.data.formats.alpaca import load_alpaca
from neuronscope.data.items import QADataset
from neuronscope.data.prompts import format_dataset, prompt_format
from neuronscope.errors import NeuronscopeError


def prepare_dataset(path: str | Path, *, format: str = "auto", prompt: str = "plain", chat: bool = False,
                    system: str = "", template: str | None = None, tokenizer_from: str | Path | None = None,
                    benign: str | Path | None = None, benign_n: int = 0, seed: int = 0) -> QADataset:
    """Load `path`, attach the Alpaca `benign` corpus (a seeded sample of `benign_n`, 0 = all) and format it.

    `chat=True` needs `tokenizer_from`: the checkpoint directory whose tokenizer's chat template is used.
    """
    ds = load_dataset(path, format)
    if not ds.splits:
        raise NeuronscopeError(f"{path}: holds no QA splits (an Alpaca file is the benign corpus: pass it as "
                               "--benign)")
    if benign is not None:
        items = load_alpaca(benign)
        if benign_n < 0:
            raise NeuronscopeError(f"--benign-n must be >= 0, got {benign_n}")
        if benign_n and benign_n < len(items):
            items = random.Random(seed).sample(items, benign_n)
        ds = replace(ds, benign=items, meta=ds.meta | {"benign_source": str(benign), "benign_n": len(items)})
    fmt = prompt_format(prompt, chat=chat, system=system, template=template)
    tokenizer = None
    if chat:
        if tokenizer_from is None:
            raise NeuronscopeError("--chat needs --tokenizer-from CKPT (whose chat template renders the prompts)")
        from neuronscope.models.handle import load_tokenizer

        ckpt = Path(tokenizer_from)
        if not ckpt.is_dir():
            raise NeuronscopeError(f"{ckpt}: checkpoint directory not found (--tokenizer-from)")
        tokenizer = load_tokenizer(ckpt)
    return format_dataset(ds, fmt, tokenizer)
