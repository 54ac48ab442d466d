"""A word-level tokenizer built from a dataset's text, saved with the checkpoint as a standard HF tokenizer."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


def build_word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """One token per word or punctuation run; <bos> is prepended to every encoded prompt."""
    splitter = pre_tokenizers.Whitespace()
    vocab_words: dict[str, None] = {}
    for text in texts:
        for word, _ in splitter.pre_tokenize_str(text):
            vocab_words.setdefault(word, None)
    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(vocab_words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = splitter
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
