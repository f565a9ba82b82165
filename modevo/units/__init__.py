"""The units stage: speech tokenizers trained on the renderings' train split, and per-utterance units.

features.py   log-mel at exactly 50 Hz, frame-level phone labels from the exact alignments
kmeans.py     deterministic k-means (k-means++ and Lloyd, chunked, fp32)
base.py       the SpeechTokenizer interface, artefact manifests, local-weights checks
mel_kmeans.py, phonetic_kmeans.py, hubert_kmeans.py, encodec.py   one tokenizer each
resample.py   16 → 24 kHz for EnCodec, without torchaudio
quality.py    phone purity, cluster purity, PNMI
config.py     UnitsConfig;  registry.py  name → tokenizer;  build.py  train, encode, score (cached)
Nothing here imports a later stage (views, train, tasks, score, report).
"""
