"""User side information (demographics, subscriptions) where known."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from primetime.data.vocab import Vocabulary


@dataclass(frozen=True, eq=False)
class Users:
    """``frame`` row ``k`` is user_idx ``k + 1``; columns beyond ``user_id`` are optional
    (``age``, ``gender``, ``occupation``, ``zip_code``, ``platforms`` ...)."""

    frame: pl.DataFrame
    users: Vocabulary

    @classmethod
    def from_ids(cls, ids: list[str]) -> Users:
        return cls(
            frame=pl.DataFrame({"user_id": ids}, schema={"user_id": pl.Utf8}),
            users=Vocabulary(ids, name="user"),
        )

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> Users:
        if "user_id" not in df.columns:
            raise ValueError("users frame needs a 'user_id' column")
        df = df.with_columns(pl.col("user_id").cast(pl.Utf8))
        return cls(frame=df, users=Vocabulary(df["user_id"].to_list(), name="user"))

    def __len__(self) -> int:
        return self.frame.height
