"""The recipe options working together on the tiny synthetic set: two-stage augmentation in the dataset
and its epoch callback, SimCC + AdamW/flat-cosine/EMA through train.py's runner (EMA weights evaluated,
error classes per epoch, report columns), exact resume with EMA for every schedule, and the LSPET
screening experiments composing into valid configs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_training import SYNTHETIC, StopAfterEpoch, _config

from hrnet_train.codecs import create_codec
from hrnet_train.config_schema import register_resolvers, validate_train_config
from hrnet_train.data.augment import AugmentConfig
from hrnet_train.data.coco import TopDownCocoDataset
from hrnet_train.data.synthetic import ensure_synthetic_dataset
from hrnet_train.evaluation.analysis import ERROR_CLASSES
from hrnet_train.evaluation.coco_metric import load_coco
from hrnet_train.evaluation.validation import pose_metrics, secondary_stats_line
from hrnet_train.keypoints import load_keypoint_set
from hrnet_train.paths import config_dir
from hrnet_train.report import collect_runs, markdown_table
from hrnet_train.slim_checkpoint import main as slim_main
from hrnet_train.trained_model import read_checkpoint
from hrnet_train.training.callbacks import DatasetEpochSeeder
from hrnet_train.training.preflight import check_components
from hrnet_train.training.runner import run_training

register_resolvers()
pytestmark = pytest.mark.usefixtures("one_torch_thread")
COCO17 = load_keypoint_set("coco17")
STRONG = {
    "scale_range": [0.6, 1.4], "max_rotation": 80.0, "photometric": True, "occlusion": True, "prob_occlusion": 1.0,
    "max_holes": 1, "min_hole_fraction": 0.2, "max_hole_fraction": 0.4, "prob_box_jitter": 0.3,
    "box_jitter_scale": [1.0, 1.6], "box_jitter_shift": 0.16, "stage2_epochs": 2,
    "stage2": {"scale_range": [0.75, 1.25], "max_rotation": 60.0, "box_jitter_shift": 0.0, "prob_occlusion": 0.5},
}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic_tiny"), **SYNTHETIC)


def _train_dataset(root: Path, seed: int) -> TopDownCocoDataset:
    return TopDownCocoDataset(root / "annotations" / "person_keypoints_train.json", root / "images" / "train", COCO17,
                              create_codec("dark", (128, 96)), train=True, augment=AugmentConfig.from_mapping(STRONG), seed=seed)


def test_strong_augmentation_is_reproducible_and_switches_stage(tiny_root: Path) -> None:
    first, again, other = _train_dataset(tiny_root, 0), _train_dataset(tiny_root, 0), _train_dataset(tiny_root, 1)
    samples = [first[i] for i in range(4)]
    for i, sample in enumerate(samples):  # same seed, same epoch: the same pixels (dropout and colour included) and targets
        twin = again[i]
        assert torch.equal(sample["image"], twin["image"]) and torch.equal(sample["target"], twin["target"])
    assert not all(torch.equal(s["image"], other[i]["image"]) for i, s in enumerate(samples))
    trainer = SimpleNamespace(datamodule=SimpleNamespace(train_dataset=first), current_epoch=7, max_epochs=10)
    printed: list[str] = []
    module = SimpleNamespace(print=printed.append)
    DatasetEpochSeeder().on_train_epoch_start(trainer, module)
    assert (first.epoch, first.augment_stage, first.augment.max_rotation, printed) == (7, 1, 80.0, [])
    trainer.current_epoch = 8
    DatasetEpochSeeder().on_train_epoch_start(trainer, module)
    assert (first.epoch, first.augment_stage, first.augment.max_rotation, first.augment.prob_occlusion) == (8, 2, 60.0, 0.5)
    assert printed == ["augmentation: stage 2 from epoch 8"]
    assert first._crop_augmentation.transforms[-1].p == 0.5  # the dropout pipeline was rebuilt for stage 2
    again.set_epoch(8, max_epochs=10)
    assert torch.equal(first[0]["image"], again[0]["image"])  # stage 2 is reproducible too
    first.set_epoch(0, max_epochs=10)
    assert first.augment_stage == 1 and torch.equal(first[0]["image"], samples[0]["image"])


RECIPE_RUN = (
    "codec=simcc", "codec.sigma=4.0", "model.head=simcc", "+model.head_options.input_size=128x96",
    "optimizer.name=adamw", "optimizer.weight_decay=0.05", "optimizer.no_decay_norm_bias=true",
    "scheduler.name=flat_cosine", "ema.enabled=true", "logger=tensorboard",
)


def test_simcc_with_modern_optimisation_trains_and_validates_the_ema_weights(tiny_root: Path, tmp_path: Path) -> None:
    config, resolved = _config(tiny_root, tmp_path / "run", *RECIPE_RUN)
    check_components(config)
    report = run_training(config, resolved)
    stats = report["stats"]
    assert 0.0 <= stats["AP"] <= 1.0 and {f"err_{name}" for name in ERROR_CLASSES} <= set(stats)
    last = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    state = last["state_dict"]
    assert state["model.final_layer.x_logits.weight"].shape == (192, 768)
    assert not torch.equal(state["ema.model.final_layer.x_logits.weight"], state["model.final_layer.x_logits.weight"])
    assert int(state["ema.num_updates"]) == last["global_step"] == 6  # one EMA update per optimiser step
    groups = last["optimizer_states"][0]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    # The validation numbers are the EMA weights' numbers: evaluate.py on the best checkpoint (which
    # loads the EMA copy) reproduces them.
    from hrnet_train.evaluation.runner import run_from_config

    overrides = [f"ckpt={report['best_checkpoint']}", f"data.root={tiny_root}", "data.split=val", "data.img_dir=images/val",
                 "num_workers=0", "gallery_size=0", f"output_dir={tmp_path / 'eval'}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        metrics = run_from_config(compose(config_name="eval", overrides=overrides))
    assert metrics["stats"]["AP"] == pytest.approx(stats["AP"], abs=1e-6)
    # The slim file to ship keeps exactly those EMA weights as model.* and scores the same.
    slim_path = slim_main([f"ckpt={report['best_checkpoint']}", f"output_dir={tmp_path}", "name=slim"])
    slim, best = read_checkpoint(slim_path), read_checkpoint(report["best_checkpoint"])
    assert set(slim) == {"state_dict", "hyper_parameters", "epoch", "global_step", "pytorch-lightning_version", "slimmed_from"}
    assert slim["slimmed_from"]["weights"] == "ema" and slim["hyper_parameters"] == best["hyper_parameters"]
    ema_weights = {key[len("ema.model."):]: value for key, value in best["state_dict"].items() if key.startswith("ema.model.")}
    assert slim["state_dict"].keys() == {f"model.{key}" for key in ema_weights}
    assert all(torch.equal(slim["state_dict"][f"model.{key}"], value) for key, value in ema_weights.items())
    assert slim_path.stat().st_size < 0.5 * Path(report["best_checkpoint"]).stat().st_size
    overrides[0] = f"ckpt={slim_path}"
    overrides[-1] = f"output_dir={tmp_path / 'eval_slim'}"
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        assert run_from_config(compose(config_name="eval", overrides=overrides))["stats"]["AP"] == metrics["stats"]["AP"]
    total = max(sum(metrics["error_classes"].values()), 1)  # 0 when no prediction matched a person yet
    for name in ERROR_CLASSES:
        assert metrics["error_classes"][name] / total == pytest.approx(stats[f"err_{name}"], abs=1e-9)
    # Every epoch logged the error classes; the report has a column for each.
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("val/err_inversion")) == 2 and "val/err_good" in events.Tags()["scalars"]
    table = markdown_table(collect_runs([tmp_path / "run"]))
    assert "| err_good | err_jitter | err_inversion | err_swap | err_miss |" in table and "| simcc |" in table


def test_validation_metrics_carry_error_class_shares(tiny_root: Path) -> None:
    """Predictions equal to the labels are all 'good'; the same with left and right exchanged are mostly
    inversions; the shares are fractions of the classified keypoints and reach the epoch's summary line."""
    coco = load_coco(tiny_root / "annotations" / "person_keypoints_val.json")
    annotations = [a for a in coco.loadAnns(coco.getAnnIds()) if a["num_keypoints"] > 0]

    def results(swap: bool) -> list[dict]:
        rows = []
        for ann in annotations:
            points = torch.tensor(ann["keypoints"], dtype=torch.float64).reshape(17, 3)
            points = points[COCO17.flip_index] if swap else points
            points[:, 2] = 1.0
            rows.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": points.flatten().tolist(), "score": 1.0})
        return rows

    exact = pose_metrics(coco, results(False), COCO17)
    assert (exact["AP"], exact["err_good"], exact["err_inversion"]) == (pytest.approx(1.0), 1.0, 0.0)
    swapped = pose_metrics(coco, results(True), COCO17)
    assert sum(swapped[f"err_{name}"] for name in ERROR_CLASSES) == pytest.approx(1.0)
    assert swapped["err_inversion"] > 0.6 and swapped["err_good"] < 0.3
    assert secondary_stats_line(exact) == "keypoints (%): good 100.0, jitter 0.0, inversion 0.0, swap 0.0, miss 0.0"


@pytest.mark.parametrize("schedule", [("scheduler.name=flat_cosine", "scheduler.flat_fraction=0.25"),
                                      ("scheduler.name=multistep", "scheduler.milestones=[1]")])
def test_ema_resumes_exactly_with_every_schedule(tiny_root: Path, tmp_path: Path, schedule: tuple[str, ...]) -> None:
    overrides = (*schedule, "scheduler.warmup_iters=2", "ema.enabled=true", "ema.decay=0.9", "trainer.max_epochs=3")
    run_training(*_config(tiny_root, tmp_path / "full", *overrides))
    run_training(*_config(tiny_root, tmp_path / "part", *overrides), extra_callbacks=[StopAfterEpoch(1)])
    run_training(*_config(tiny_root, tmp_path / "part", *overrides, "ckpt_path=last"))
    full = read_checkpoint(tmp_path / "full" / "checkpoints" / "last.ckpt")
    resumed = read_checkpoint(tmp_path / "part" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == full["global_step"] == 9
    assert any(key.startswith("ema.model.") for key in full["state_dict"])
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert resumed["lr_schedulers"][0]["_last_lr"] == full["lr_schedulers"][0]["_last_lr"]


def _compose(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.run_dir = "/tmp/unused"
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("experiment", ["lspet_r_base", "lspet_r_optim", "lspet_r_aug", "lspet_r_simcc", "lspet_r_best",
                                        "lspet_r_optim_aug"])
def test_screening_experiments_compose_and_fit_together(experiment: str, tmp_path: Path) -> None:
    # lspet_source=null: composes without the LSPET download (converted data expected in data.root).
    config = validate_train_config(_compose(f"experiment={experiment}", f"data.root={tmp_path}", "data.lspet_source=null"))
    check_components(config)
    base = validate_train_config(_compose("experiment=lspet_cpu", f"data.root={tmp_path}", "data.lspet_source=null"))
    assert config.experiment_name == experiment and (config.model["name"], config.data.input_size) == ("hrnet_w18_small_v1", "192x160")
    assert config.optimizer.lr == base.optimizer.lr and config.data.batch_size == base.data.batch_size
    # epochs calibrated to one budget: the base's 0.99 min per epoch, the others by their cost per sample
    assert config.trainer.max_epochs == {"lspet_r_base": 15, "lspet_r_optim": 15, "lspet_r_aug": 14, "lspet_r_simcc": 13,
                                         "lspet_r_best": 12, "lspet_r_optim_aug": 14}[experiment]
    modern = experiment in ("lspet_r_optim", "lspet_r_best", "lspet_r_optim_aug")
    assert (config.optimizer.name, config.scheduler.name, config.ema.enabled) == (
        ("adamw", "flat_cosine", True) if modern else ("adam", "cosine", False))
    strong = AugmentConfig.from_mapping(config.data.augment)
    assert (strong.max_rotation is not None) == (experiment in ("lspet_r_aug", "lspet_r_best", "lspet_r_optim_aug"))
    assert strong.prob_half_body == 0.0  # LSPET keeps the committed recipe's no half-body
    simcc = experiment in ("lspet_r_simcc", "lspet_r_best")
    assert (config.codec["name"], config.model["head"]) == (("simcc", "simcc") if simcc else ("dark", "v1"))
    if simcc:
        assert config.model["head_options"] == {"input_size": "192x160", "split_ratio": 2.0}


def test_full_runs_are_the_reference_recipe_plus_the_best_rows_and_lspet_cpu_is_the_winner(tmp_path: Path) -> None:
    def composed(experiment: str) -> dict:
        config = _compose(f"experiment={experiment}", f"data.root={tmp_path}", "data.lspet_source=null")
        validate_train_config(config)
        return {key: value for key, value in config.items() if key not in ("experiment_name", "output_dir")}

    reference, optim, optim_aug = (composed(name) for name in ("lspet_hrnet_recipe", "lspet_r_optim_full", "lspet_r_optim_aug_full"))
    assert composed("lspet_cpu") == optim  # the shipped recipe is the winning full run, nothing else
    assert (reference["optimizer"]["name"], reference["scheduler"]["name"], reference["ema"]["enabled"]) == ("adam", "cosine", False)
    assert (optim["optimizer"]["name"], optim["scheduler"]["name"], optim["ema"]["enabled"]) == ("adamw", "flat_cosine", True)
    assert {key: value for key, value in optim.items() if key not in ("optimizer", "scheduler", "ema")} == {
        key: value for key, value in reference.items() if key not in ("optimizer", "scheduler", "ema")}
    assert (reference["trainer"]["max_epochs"], optim["trainer"]["max_epochs"], optim_aug["trainer"]["max_epochs"]) == (50, 50, 47)
    augment = AugmentConfig.from_mapping(optim_aug["data"]["augment"])
    assert (augment.max_rotation, augment.stage2_epochs, augment.prob_box_jitter) == (80.0, 4, 0.3)
    # the screen's base is the reference recipe cut to 15 epochs
    assert {**composed("lspet_r_base"), "trainer": reference["trainer"]} == reference


def test_strong_recipe_keeps_coco_half_body(tmp_path: Path) -> None:
    config = validate_train_config(_compose("data=coco", f"data.root={tmp_path}", "+recipe=strong_aug"))
    augment = AugmentConfig.from_mapping(config.data.augment)
    assert (augment.prob_half_body, augment.scale_range, augment.max_rotation) == (0.3, (0.6, 1.4), 80.0)
