"""What every linkage stage shares: the run's settings (`LinkConfig`), the progress callback and the DuckDB
limits a linkage connection runs under."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[[float, str], None]


def noop(fraction: float, message: str) -> None:
    return None


@dataclass(frozen=True)
class LinkConfig:
    match_threshold: float = 0.9  # a model link at or above this joins two records
    review_floor: float | None = None  # links from here up to the threshold are queued for review; None: trained
    #                                     on this run's scored pairs (inference.trained_review_floor)
    review_floor_lowest: float = 0.1  # the lowest trained floor: pairs are scored down to it to train the floor
    review_cap_per_100k: float | None = 1_492.0  # a trained floor rises until the band holds at most this many pairs
    #   per 100,000 named records (the queue before issue 20, docs/LINKAGE_PRIVACY.md); None: no cap
    seed: int = 42
    max_u_pairs: float = 2e6
    train_sample: int = 250_000  # above this many groups, train on a seeded random sample of them
    em_max_pairs: float | None = 2e6  # each EM session on about this many of its blocked pairs at most (Splink's
    #   own hash sample of the records); None: every blocked pair (model.train)
    memory_limit: str | None = None  # DuckDB memory limit while linking (None: 35% of RAM, at most 4 GB: 8 GB
    #                                  linked 1M and 5M no faster, 5M's process peaking 2.5 GB higher: PERFORMANCE.md);
    #                                  past it DuckDB spills to disk instead of growing
    temp_directory: str | None = None  # where DuckDB spills (None: one temporary folder per process)
    predict_chunk_nodes: int = 1_500_000  # score in chunks of about this many nodes (bounded memory at 5M+)
    backend: str = "duckdb"  # where Splink scores pairs: "duckdb" (in process) or "spark" (lib.linkage.spark)
    spark_master: str | None = None  # e.g. "local[2]", "spark://host:7077"; None: $JOINEDUP_SPARK_MASTER,
    #                                  an active SparkSession, else local[*]
    spark_checkpoint_dir: str | None = None  # visible to every executor on a cluster (HDFS, S3, shared mount)
    spark_partitions: int | None = None  # spark.sql.shuffle.partitions (None: the session's own)
    spark_exchange_dir: str | None = None  # nodes go to the cluster as Parquet here instead of from memory
    name_similarity: bool = True  # Dice levels on the names' Bloom filters (lib.linkage.dice); False: without
    name_blocking: bool = True  # candidate pairs also from MinHash bands of the names' Bloom filters
    #                             (lib.linkage.lsh); False: today's blocking rules only. Only with the Dice
    #                             levels, from name_similarity_min_nodes (inference.uses_name_blocking)
    name_pairs_both_differ: bool = False  # True: name blocking also proposes pairs whose two names both differ
    #   (every level above the names' disagreement fails); False drops them before scoring
    #   (model.without_names_both_differ: at 200,000 encounters 94% of its pairs, none scored 0.26 or more)
    dob_parts: bool = True  # a level for two of day, month and year agreeing (keyed hashes of the parts,
    #                          model.dob_parts_level); False: without it (measured in LINKAGE_PRIVACY.md)
    joint_names: bool | str = True  # with the Dice levels: where the forename disagrees, both names are weighed
    #   together (model.conditional_name_levels); "once": only both disagreeing, weighed once (model.joint_name_levels,
    #   measured worse); False: as two independent comparisons
    forename_tf: bool = False  # True: the exact forename's weight adjusted by the forename's frequency, as the
    #   surname's (model.comparisons). Measured in LINKAGE_PRIVACY.md (session 7): F1 up on the built-in data, recall
    #   at equal precision down on the independent corruption model, so not the default
    encounter_area: bool = True  # where the home postcode is unknown or differs, two records met in the same local
    #   authority district agree on place (model.area_levels; LINKAGE_PRIVACY.md, session 12); False: without
    name_similarity_min_nodes: int = 50_000  # fewer nodes to train on: no Dice levels (measured: at 20,000
    #                                          encounters they cost recall, at 100,000 they add it; LINKAGE_PRIVACY.md)

    def __post_init__(self):
        if self.review_floor is not None and not 0 < self.review_floor <= self.match_threshold:
            raise ValueError(f"review_floor must be above 0 and at most the match threshold ({self.match_threshold}),"
                             f" not {self.review_floor!r}")
        if self.backend not in ("duckdb", "spark"):
            raise ValueError(f"backend must be 'duckdb' or 'spark', not {self.backend!r}")


def memory_limit(config: LinkConfig) -> str:
    if config.memory_limit:
        return config.memory_limit
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return f"{max(1, min(4, int(total * 0.35 / 2**30)))}GB"


_TEMP: dict[str, str] = {}


def temp_directory(config: LinkConfig) -> str:
    if config.temp_directory:
        return config.temp_directory
    if "dir" not in _TEMP or not os.path.isdir(_TEMP["dir"]):
        _TEMP["dir"] = tempfile.mkdtemp(prefix="joinedup-link-spill-")
        atexit.register(shutil.rmtree, _TEMP["dir"], True)  # the process's own spill folder goes with it
    return _TEMP["dir"]


def duckdb_config(config: LinkConfig) -> dict:
    return {"memory_limit": memory_limit(config), "temp_directory": temp_directory(config)}
