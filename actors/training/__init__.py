"""Fine-tuning and model export: presets, data masking, the trainer actor, merge → GGUF → quantize.

Modules (imported lazily: torch, transformers, peft and trl come with the
`train` extra and load only when a training or an export really runs):

* ``presets``  — `config/train-presets.yaml`, validated with pydantic;
* ``recipe``   — `TrainRequest` → `TrainPlan` (what this machine can do) →
  TRL's `SFTConfig`, PEFT's `LoraConfig`, bitsandbytes' `BitsAndBytesConfig`;
* ``models``   — base models: the bundled GGUF dequantized once, local folders, the hub cache;
* ``data``     — `messages` JSONL → token ids with assistant-only labels, the length policy;
* ``trainer``  — the actor: one `SFTTrainer` in a worker thread, progress events, resume;
* ``export``   — adapter merge, GGUF conversion, quantization, Ollama Modelfile, verification;
* ``records``  — what a training run's record (kept by `state.training_records`) means: resume, export;
* ``snapshot`` — one training run read back for display: progress, loss history, files.
"""
