"""Score candidate pairs on Spark through Splink's Spark backend (`LinkConfig(backend="spark")`).

Only the Splink scoring (blocking, comparison vectors, match weights: the step whose cost grows with the
square of block sizes) moves to Spark. The deterministic NHS-number pass, training and clustering stay
where they are:

- the deterministic pass runs in DuckDB on the store (one sort and group-by; seconds at a million rows);
- training runs in DuckDB on the driver, on at most `LinkConfig.train_sample` groups (a seeded sample),
  so its cost does not grow with the data; the trained λ, m and u are then put into the same settings
  written in Spark SQL (`model.trained_settings`: Splink's model JSON holds DuckDB SQL, whose
  double-quoted identifiers would be string literals in Spark). Spark and DuckDB therefore score every pair
  with the same m, u and λ, and produce the
  same links and the same clusters (tests/test_spark.py). Training on Spark as well would draw a
  different random sample for u (each engine has its own random generator), so the parameters, and
  near-threshold links, would differ a little;
- the links at or above the review floor (about one per record) come back to the driver, where the
  constrained clustering (reviewers' decisions, two-NHS-number rule) runs as on DuckDB.

Which session: `LinkConfig.spark_master` (e.g. ``local[2]``, ``spark://host:7077``, ``yarn``), else
``$JOINEDUP_SPARK_MASTER``, else an already active SparkSession (one built by the caller, e.g. on
Databricks, with Splink's jar on ``spark.jars``), else ``local[*]``. Splink's similarity jar is put on
``spark.jars`` of sessions built here; the checkpoint directory is `LinkConfig.spark_checkpoint_dir` or
``$JOINEDUP_SPARK_CHECKPOINT_DIR`` (must be visible to every executor on a cluster: HDFS, S3, a shared
mount), else a temporary folder (fine for local mode only).
"""
from __future__ import annotations

import os
import tempfile

import pandas as pd

from lib.linkage import model

MASTER_ENV = "JOINEDUP_SPARK_MASTER"
CHECKPOINT_ENV = "JOINEDUP_SPARK_CHECKPOINT_DIR"


def available() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def session(master: str | None = None, checkpoint_dir: str | None = None, partitions: int | None = None):
    """The SparkSession linkage runs on (see the module notes for which one)."""
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    master = master or os.environ.get(MASTER_ENV)
    spark = SparkSession.getActiveSession() if master is None else None
    if spark is None:
        builder = (SparkSession.builder.appName("joined-up-linkage")
                   .master(master or "local[*]")
                   .config("spark.jars", similarity_jar_location())
                   .config("spark.sql.session.timeZone", "UTC")
                   .config("spark.ui.enabled", "false"))
        if partitions:
            builder = builder.config("spark.sql.shuffle.partitions", str(partitions))
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    elif partitions:
        spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    if spark.sparkContext._jsc.sc().getCheckpointDir().isEmpty() or checkpoint_dir:
        folder = checkpoint_dir or os.environ.get(CHECKPOINT_ENV) or tempfile.mkdtemp(prefix="joinedup-spark-")
        spark.sparkContext.setCheckpointDir(folder)
    return spark


def predict(frame: pd.DataFrame, model_json: dict, threshold: float, *, master: str | None = None,
            checkpoint_dir: str | None = None, partitions: int | None = None,
            exchange_dir: str | None = None) -> pd.DataFrame:
    """Splink predictions (pairs at or above `threshold`) of `frame` (unique_id + model features) scored on
    Spark with a trained model; the same columns as the DuckDB backend's (lib.linkage.model.edge_columns).

    `exchange_dir`: a folder every executor can read (HDFS, S3, shared mount); the nodes are written there as
    Parquet and read by the cluster, instead of being shipped from the driver's memory.
    """
    from splink import Linker
    from splink.backends.spark import SparkAPI

    spark = session(master, checkpoint_dir, partitions)
    if exchange_dir:
        path = os.path.join(exchange_dir, "linkage_nodes.parquet")
        if "://" not in path:
            os.makedirs(exchange_dir, exist_ok=True)
        frame.to_parquet(path, index=False)
        table = spark.read.parquet(path)
    else:
        import pyarrow as pa

        table = spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))
    api = SparkAPI(spark_session=spark, num_partitions_on_repartition=partitions)
    # A second link in the same process finds the first one's view in the session: Splink refuses to overwrite a
    # table it did not name itself, so the second run failed ("Table 'encounters' already exists").
    spark.catalog.dropTempView("encounters")
    linker = Linker(api.register(table, dataset_display_name="encounters"),
                    model.scoring_settings(model.trained_settings(model_json, "spark"),
                                           model.NUMBERED in frame.columns), log_level=30)
    scored = linker.inference.predict(threshold_match_probability=threshold).as_spark_dataframe()
    return scored.select(*model.edge_columns(scored.columns)).toPandas()  # the matching columns stay on the cluster
