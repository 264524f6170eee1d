"""Import the authors' published DeepEmoClusters checkpoints (MIT, MSP-Podcast v1.6) as a run.

Reads the three per-attribute `.pth.tar` files and the `.mat` normalisation terms from paths the
user gives; nothing here depends on where those files live.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.io import loadmat

from core.config import ModelConfig, RunConfig
from core.errors import UserError
from core.model.bundle import ModelBundle, Normalisation, bundle_state
from core.model.network import EmotionCNN, official_state_dict
from core.store.run_info import RunInfo
from core.store.run_store import Run, RunStore

# attribute -> (file tag in the published names, clusters K as published)
OFFICIAL_ATTRIBUTES = {"arousal": ("act", 10), "dominance": ("dom", 30), "valence": ("val", 30)}
PUBLISHED_TEST_CCC = {"arousal": 0.6732, "dominance": 0.5547, "valence": 0.1902}  # SPEC 2.6
ATTRIBUTION = ("Published DeepEmoCluster models by Wei-Cheng Lin, Kusha Sridhar and Carlos Busso "
               "(winston-lin-wei-cheng/DeepEmoClusters, MIT licence, copyright (c) 2023 Wei-Cheng Lin).")


class OfficialImportError(UserError, ValueError):
    pass


def import_official(checkpoints: dict[str, Path], norm_dir: Path, store: RunStore,
                    name: str = "official-msp-podcast") -> Run:
    """Convert the published models into one run holding three per-attribute networks.

    The run id is derived from the files' contents, so importing the same files again returns the
    existing run. These checkpoints carry the last epoch's cluster head but no centroids.

    Args:
        checkpoints: attribute name ("arousal", "dominance", "valence") -> `.pth.tar` path.
        norm_dir: folder with `feat_norm_{means,stds}.mat` and `{act,dom,val}_norm_{means,stds}.mat`.
        store: where to write the run.

    Raises:
        OfficialImportError: a missing or malformed file, named with the problem.
    """
    if set(checkpoints) != set(OFFICIAL_ATTRIBUTES):
        raise OfficialImportError(f"need one checkpoint per attribute {sorted(OFFICIAL_ATTRIBUTES)}, got {sorted(checkpoints)}")
    norm_dir = Path(norm_dir)
    norm_paths = [norm_dir / f"{tag}_norm_{kind}.mat" for tag in ("feat", "act", "dom", "val") for kind in ("means", "stds")]
    missing = [str(p) for p in [*checkpoints.values(), *norm_paths] if not Path(p).is_file()]
    if missing:
        raise OfficialImportError("missing files: " + ", ".join(missing))
    digest = hashlib.sha256()
    for p in [*(checkpoints[a] for a in OFFICIAL_ATTRIBUTES), *norm_paths]:
        digest.update(Path(p).read_bytes())
    run_id = f"{name}-{digest.hexdigest()[:8]}"
    if run_id in {r.run_id for r in store.list()}:
        return store.load(run_id)

    networks = {}
    for attribute, (tag, n_clusters) in OFFICIAL_ATTRIBUTES.items():
        net = EmotionCNN(ModelConfig(attributes=(attribute,), n_clusters=n_clusters))
        try:
            state = torch.load(checkpoints[attribute], map_location="cpu", weights_only=True)
            net.load_state_dict(official_state_dict(state["state_dict"]))
        except (RuntimeError, KeyError, TypeError, OSError) as err:
            raise OfficialImportError(f"{checkpoints[attribute]}: not a published {attribute} checkpoint ({err})") from err
        networks[attribute] = net.eval()
    normalisation = Normalisation(
        feature_mean=_read_mat(norm_dir / "feat_norm_means.mat", 128),
        feature_std=_read_mat(norm_dir / "feat_norm_stds.mat", 128),
        label_mean={a: float(_read_mat(norm_dir / f"{t}_norm_means.mat", 1)[0]) for a, (t, _) in OFFICIAL_ATTRIBUTES.items()},
        label_std={a: float(_read_mat(norm_dir / f"{t}_norm_stds.mat", 1)[0]) for a, (t, _) in OFFICIAL_ATTRIBUTES.items()},
    )
    # The shared settings are the published frontend (RunConfig defaults); the model section
    # describes the arousal network, the one the map and analysis use by default (SPEC 4).
    config = RunConfig(name=name, model=networks["arousal"].cfg)
    info = RunInfo(kind="official", name=name, config=config, run_id=run_id, primary_network="arousal",
                   source={a: Path(p).name for a, p in checkpoints.items()}, attribution=ATTRIBUTION,
                   published_test_ccc=PUBLISHED_TEST_CCC,
                   centroids="none: derive clusters by K-means in the chosen network's space, or from its head's argmax")
    return store.save_complete(info, bundle_state(ModelBundle(networks, normalisation, config)))


@dataclass(frozen=True)
class OfficialFiles:
    checkpoints: dict[str, Path]  # attribute -> `.pth.tar`
    norm_dir: Path  # folder of the `.mat` normalisation terms


def find_official_files(folder: Path) -> OfficialFiles:
    """Locate the checkpoints (`checkpoints/*_{Act,Dom,Val}.pth.tar`) and `norm_terms/` in a folder laid
    out like the authors' release; raises OfficialImportError naming what is missing."""
    folder = Path(folder)
    found = {}
    for attribute, (tag, _) in OFFICIAL_ATTRIBUTES.items():
        hits = sorted(folder.rglob(f"*_{tag.capitalize()}.pth.tar"))
        if len(hits) != 1:
            raise OfficialImportError(f"{folder}: expected one *_{tag.capitalize()}.pth.tar, found {len(hits)}")
        found[attribute] = hits[0]
    norm = sorted(p.parent for p in folder.rglob("feat_norm_means.mat"))
    if len(norm) != 1:
        raise OfficialImportError(f"{folder}: expected one folder with feat_norm_means.mat, found {len(norm)}")
    return OfficialFiles(found, norm[0])


def _read_mat(path: Path, size: int) -> np.ndarray:
    try:
        value = np.asarray(loadmat(path)["normal_para"], dtype=np.float64).ravel()
    except (ValueError, KeyError, OSError) as err:
        raise OfficialImportError(f"{path}: not a normalisation-term .mat with 'normal_para' ({err})") from err
    if value.shape != (size,):
        raise OfficialImportError(f"{path}: expected {size} values, found {value.size}")
    return value
