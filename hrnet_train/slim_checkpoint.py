"""``python -m hrnet_train.slim_checkpoint ckpt=<train.py checkpoint> output_dir=<folder> [name=...]``: the file to ship.

A training checkpoint carries the optimiser's moments, the LR schedule, the loop state and, with EMA on,
two copies of the network (an LSPET hrnet_w18_small_v1 run with EMA: 21.0 MB). Everything that only
uses a trained model -- evaluate.py, the estimator and demo, export, ``init_from=`` -- needs one copy
and the hyper_parameters (5.3 MB). The slim file keeps the weights those tools would pick: the EMA copy
when the checkpoint has one (what validation scored and the best checkpoint was chosen by), else the
trained weights, stored as ``model.*``; plus ``hyper_parameters``, ``epoch``, ``global_step`` and a
``slimmed_from`` record. It cannot resume a run (no optimiser state).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hrnet_train.cli_args import CommandLine, Option, UsageError, parse_bool, run_tool
from hrnet_train.models.loading import CheckpointError
from hrnet_train.output_guard import check_output_dir, refuse_overwriting_inputs
from hrnet_train.trained_model import (
    MODEL_PREFIX,
    is_training_checkpoint,
    network_state_dict,
    read_checkpoint,
    uses_ema_weights,
)
from hrnet_train.training.checkpointing import atomic_torch_save
from hrnet_train.training.divergence import describe_tensors, non_finite_tensors

KEPT_FIELDS = ("hyper_parameters", "epoch", "global_step", "pytorch-lightning_version")
COMMAND_LINE = CommandLine(
    prog="python -m hrnet_train.slim_checkpoint",
    summary="Write a train.py checkpoint's network (EMA weights when present) and hyper_parameters without the "
            "optimiser and loop state: the file to ship, evaluate, export or fine-tune from.",
    options=(
        Option("ckpt", "the train.py checkpoint to slim", required=True),
        Option("output_dir", "folder of the slim checkpoint <name>.ckpt (written atomically; never the input itself)",
               required=True),
        Option("name", "file name without suffix (default: the checkpoint's file stem)"),
        Option("ema", "use the EMA weights when the checkpoint has them", lambda v: parse_bool(v, "ema"), "true"),
    ),
    examples=("python -m hrnet_train.slim_checkpoint ckpt=outputs/lspet_cpu/<run>/checkpoints/best-epoch049.ckpt "
              "output_dir=models/lspet_cpu name=lspet_cpu",),
)


def slim_content(content: Mapping[str, Any], prefer_ema: bool = True, label: str = "checkpoint") -> dict[str, Any]:
    """The slim checkpoint of a training checkpoint's ``content``; raises CheckpointError for a file
    train.py did not write and ValueError for non-finite weights (a diverged run is not shipped)."""
    if not is_training_checkpoint(content):
        raise CheckpointError(f"{label}: not a train.py checkpoint (expected 'state_dict' and 'hyper_parameters' "
                              f"with a model config; found keys {sorted(content)[:6]})")
    weights = network_state_dict(content, prefer_ema=prefer_ema, label=label)
    bad = non_finite_tensors(weights)
    if bad:
        raise ValueError(f"{label}: non-finite weights, not slimmed: {describe_tensors(bad, len(weights))}")
    slim = {field: content[field] for field in KEPT_FIELDS if field in content}
    slim["state_dict"] = {MODEL_PREFIX + key: value.clone() for key, value in weights.items()}
    slim["slimmed_from"] = {"weights": "ema" if uses_ema_weights(content, prefer_ema) else "model", "file": Path(label).name}
    return slim


def main(argv: Sequence[str] | None = None) -> Path:
    options = COMMAND_LINE.parse(sys.argv[1:] if argv is None else argv)
    source = Path(options["ckpt"]).expanduser()
    output = Path(options["output_dir"]).expanduser() / f"{options['name'] or source.stem}.ckpt"
    try:
        check_output_dir(output.parent)
        refuse_overwriting_inputs([output], {"ckpt": source}, "choose another output_dir or name")
    except ValueError as error:
        raise UsageError(str(error)) from None
    slim = slim_content(read_checkpoint(source), prefer_ema=options["ema"], label=str(source))
    atomic_torch_save(slim, output)
    weights = slim["slimmed_from"]["weights"]
    print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, {source.stat().st_size / 1e6:.1f} MB before): "
          f"{len(slim['state_dict'])} tensors ({weights} weights), epoch {slim.get('epoch')}")
    return output


if __name__ == "__main__":
    sys.exit(run_tool(COMMAND_LINE.prog, main))
