"""Training stage (Splink's `linker.training`): the match model's λ, u and m estimated on this data.

Training always runs in DuckDB, on at most `LinkConfig.train_sample` nodes: m and u are properties of the
recording, not of the population size, so a large random sample estimates them as well, and EM's blocked
pairs grow with the square of the input. The trained model (Splink's JSON) is what the scoring stage uses,
on DuckDB or Spark alike. The comparisons, blocking rules and estimation steps are in lib.linkage.model.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from lib.linkage import dice, lsh, model
from lib.linkage.config import LinkConfig


def train_model(db_api, frame: pd.DataFrame, config: LinkConfig, name_lsh: bool | None = None,
                on_settings: Callable[[dict], None] | None = None) -> dict:
    """The trained model (Splink's JSON) of `frame` (unique_id + model.FEATURES), or of a seeded random sample
    of it when it holds more than `config.train_sample` nodes. `name_lsh`: whether the model blocks on the band
    keys (lib.linkage.lsh) for scoring; None: whether `frame` carries them. Training never reads the keys (no
    training rule blocks on them), so they may be computed beside it (`inference.probabilistic_pass`).
    `on_settings`: called with the model's JSON before its parameters are estimated (its comparisons, levels and
    Dice cut-points are final then), so what needs only those can start beside the estimation."""
    from splink import Linker

    if len(frame) > config.train_sample:
        frame = frame.sample(n=config.train_sample, random_state=config.seed)
    # the Dice cut-points are learned from the same nodes the model is trained on, and travel in its JSON
    use_dice = config.name_similarity and len(frame) >= config.name_similarity_min_nodes
    cuts = dice.thresholds(frame, config.seed) if use_dice else None
    if name_lsh is None:
        name_lsh = lsh.COLUMN in frame.columns
    name_lsh = config.name_blocking and name_lsh
    # never read here (the keys' own values are scoring's): a null column of their type, so Splink finds the column
    # its scoring rule names, whether the keys are in `frame` or still being computed beside it
    frame = frame.assign(**{lsh.COLUMN: lsh.no_keys(frame.index)}) if name_lsh else frame
    joint = config.joint_names if cuts else False  # the names' joint levels go with the Dice levels
    trainer = Linker(db_api.register(frame, dataset_display_name="training_nodes"),
                     model.settings(cuts, name_lsh, config.dob_parts, joint, config.forename_tf,
                                    config.encounter_area), log_level=30)
    if on_settings is not None:
        on_settings(trainer.misc.save_model_to_json())
    model.train(trainer, seed=config.seed, max_pairs=config.max_u_pairs, em_max_pairs=config.em_max_pairs)
    return trainer.misc.save_model_to_json()
