"""sentencepiece BPE for text-bpe and phone-bpe, trained on the train split only.

Phones are mapped to single characters before BPE (one phone = one symbol), so merges never split a phone.
Artefacts live in tokenizers/<family>/<hash>/ at the project root (the hash covers the training sentences
and the settings), where `modevo views build` reuses them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

from modevo.cache import atomic_dir, file_digest, read_json, verify_files
from modevo.errors import InputError

log = logging.getLogger("modevo.views")

STAGE_VERSION = "views-bpe-1"
# 39 phones × (plain + 3 stresses) fit well inside Latin Extended-A/B; none of them is a space.
_PHONE_CHAR_BASE = 0x100


def phone_symbols(tokens: list[str]) -> dict[str, str]:
    """One character per phone token. sentencepiece NFKC-normalises its input, so characters NFKC would
    change (U+0132 Ĳ → "IJ", U+013F Ŀ → "L·", ...) are skipped: each phone stays one symbol and BPE pieces
    decode back to phones. The first 39 code points are all kept (the stress-free inventory is unchanged)."""
    import unicodedata

    chars = (chr(c) for c in range(_PHONE_CHAR_BASE, 0x250) if unicodedata.normalize("NFKC", chr(c)) == chr(c))
    return dict(zip(tokens, chars))


def train_bpe(sentences: list[str], vocab_size: int, out_root: Path, family: str, max_sentences: int) -> Path:
    """Train (or reuse) a BPE model; returns the folder holding sp.model."""
    import sentencepiece as spm

    digest = hashlib.sha256()
    for s in sentences:
        digest.update(s.encode())
        digest.update(b"\n")
    key = hashlib.sha256(json.dumps({"stage": STAGE_VERSION, "data": digest.hexdigest(), "vocab": vocab_size,
                                     "max": max_sentences}).encode()).hexdigest()[:16]
    folder = out_root / family / f"v{vocab_size}-{key}"
    if (folder / "sp.model").exists():
        return folder
    model = io.BytesIO()
    spm.set_random_generator_seed(0)  # sentence sampling and shuffling: same model from the same data
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, model_type="bpe", vocab_size=vocab_size,
        character_coverage=1.0, hard_vocab_limit=False,  # a small corpus may support fewer merges: say so
        unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=2, input_sentence_size=max_sentences,
        shuffle_input_sentence=True, max_sentence_length=1 << 16, split_by_whitespace=True,
        minloglevel=2)
    with atomic_dir(folder) as tmp:
        (tmp / "sp.model").write_bytes(model.getvalue())
        (tmp / "manifest.json").write_text(json.dumps({"family": family, "vocab_size": vocab_size,
                                                       "train_sentences_sha256": digest.hexdigest(),
                                                       "stage_version": STAGE_VERSION,
                                                       "files": {"sp.model": file_digest(tmp / "sp.model")}}, indent=1))
    return folder


def load_bpe(folder: Path):
    """The sentencepiece model of a folder train_bpe wrote, checked against the sha256 recorded then."""
    import sentencepiece as spm

    folder = Path(folder)
    again = f"delete {folder} and rerun `modevo views build` (the BPE model is trained again)"
    if (folder / "manifest.json").is_file():
        verify_files(folder, read_json(folder / "manifest.json", again).get("files", {}), "BPE model", again)
    try:
        return spm.SentencePieceProcessor(model_file=str(folder / "sp.model"))
    except (OSError, RuntimeError) as e:  # an unchecked (older) model that is torn
        raise InputError(f"BPE model {folder / 'sp.model'} cannot be read ({str(e).strip()[:120]}); {again}") from None
