"""Loaders: every layout on small files written here, the prepare() cache, fetch_ml100k offline."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from primetime.data import Dataset, movielens, recbole_wheel
from primetime.data.errors import ChecksumError, DataFormatError
from primetime.data.loaders import load_any, prepare, resolve_source
from primetime.data.movielens import fetch_ml100k, load_grouplens, load_ml100k
from primetime.data.recbole_atomic import load_atomic
from primetime.data.tabular import ColumnMapping, load_table


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ids_of(ds, u: str, i: str) -> tuple[int, int]:
    return ds.interactions.users.index(u), ds.items.index(i)


# --------------------------------------------------------------------- fixtures
GENRE_FLAGS = {"Animation": 3, "Children's": 4, "Comedy": 5, "Drama": 8, "Thriller": 16}


def _flags(*genres: str) -> str:
    f = ["0"] * 19
    for g in genres:
        f[GENRE_FLAGS[g]] = "1"
    return "|".join(f)


@pytest.fixture
def ml100k_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ml-100k"
    write(
        d / "u.data",
        "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n3\t3\t2\t881250952\n",
    )
    write(
        d / "u.item",
        f"1|Toy Story (1995)|01-Jan-1995||http://imdb/1|{_flags('Animation', 'Comedy')}\n"
        f"2|Misérables, Les (1995)|01-Jan-1995||http://imdb/2|{_flags('Drama')}\n"
        f"3|unknown|||http://imdb/3|{_flags()}\n"
        f"4|Cold Title (1971)|||http://imdb/4|{_flags('Thriller')}\n",
        encoding="latin-1",
    )
    write(
        d / "u.user",
        "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n4|33|F|artist|T8H1N\n",
    )
    return d


@pytest.fixture
def ml1m_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ml-1m"
    write(d / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    write(
        d / "movies.dat",
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        '3::"Great Performances" Cats (1998)::Musical\n'
        "4::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n",
        encoding="latin-1",
    )
    write(d / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    return d


@pytest.fixture
def ml20m_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ml-20m"
    write(
        d / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n"
        "1,29,4.0,1112484676\n2,2,0.5,1112484819\n",
    )
    write(
        d / "movies.csv",
        "movieId,title,genres\n2,Jumanji (1995),Adventure|Children|Fantasy\n"
        '29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Adventure|Drama\n'
        "50,Babylon 5,(no genres listed)\n",
    )
    write(
        d / "tags.csv",
        "userId,movieId,tag,timestamp\n1,2,Robin Williams,1\n"
        '2,2,robin  williams,2\n1,29,"dark, weird",3\n1,777,orphan,4\n',
    )
    write(d / "links.csv", "movieId,imdbId,tmdbId\n2,0113497,8844\n29,0112682,\n999,0000001,1\n")
    return d


@pytest.fixture
def atomic_dir(tmp_path: Path) -> Path:
    d = tmp_path / "toy"
    write(
        d / "toy.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\t1\t4\t100\nu1\t2\t5\t101\nu2\t1\t3\t102.7\n",
    )
    write(
        d / "toy.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\t"
        "class:token_seq\n1\tToy Story\t1995\tAnimation Children's Comedy\n"
        "2\tLand Before Time III (1995)\tV\tAnimation\n3\tunkonwn\tunkonwn\tunknown\n",
    )
    write(
        d / "toy.user",
        "user_id:token\tage:token\tgender:token\toccupation:token\t"
        "zip_code:token\nu1\t24\tM\ttechnician\t85711\nu2\t53\tF\tother\t94043\n"
        "u3\t23\tM\twriter\t32067\n",
    )
    write(d / "toy.link", "item_id:token\tentity_id:token\n1\tm.toy\n2\tm.land\n9\tm.nine\n")
    write(
        d / "toy.kg",
        "head_id:token\trelation_id:token\ttail_id:token\n"
        "m.toy\tfilm.film.directed_by\tm.lasseter\nm.lasseter\tfilm.director.film\tm.toy\n"
        "m.toy\tfilm.film.sequel\tm.land\nm.nine\tfilm.film.genre\tm.drama\n",
    )
    return d


# --------------------------------------------------------------------- layouts
def test_grouplens_ml100k(ml100k_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    ds = load_grouplens(ml100k_dir)
    assert ds.name == "ml-100k"
    assert len(ds.interactions) == 4 and len(ds.catalog) == 4 and len(ds.users) == 4
    cat = ds.catalog.frame
    assert cat["title"].to_list() == ["Toy Story", "Misérables, Les", "unknown", "Cold Title"]
    assert cat["year"].to_list() == [1995, 1995, None, 1971]
    assert cat["genres"].to_list()[0] == ["Animation", "Comedy"]
    assert cat["genres"].to_list()[2] == []
    assert cat["release_date"].to_list()[0] == date(1995, 1, 1)
    assert ds.users.frame.filter(pl.col("user_id") == "4")["zip_code"].item() == "T8H1N"
    assert ds.users.frame["age"].dtype == pl.Int32
    u, i = ids_of(ds, "1", "2")
    row = np.flatnonzero((ds.interactions.user_idx == u) & (ds.interactions.item_idx == i))
    assert ds.interactions.rating[row].tolist() == [3.0]
    assert ds.interactions.timestamp[row].tolist() == [881250950]
    assert "no interactions" in caplog.text  # user 4 and item 4: kept, warned
    assert len(ds.kg) == 0


def test_grouplens_ml1m_double_colon(ml1m_dir: Path) -> None:
    ds = load_grouplens(ml1m_dir)
    assert ds.name == "ml-1m"
    assert len(ds.interactions) == 3 and len(ds.catalog) == 4
    titles = dict(zip(ds.catalog.frame["item_id"], ds.catalog.frame["title"], strict=True))
    assert titles["3"] == '"Great Performances" Cats'
    assert titles["4"] == "Cité des enfants perdus, La"
    assert ds.catalog.frame["genres"].to_list()[1] == ["Animation", "Children's", "Musical"]
    users = ds.users.frame.sort("user_id")
    assert users["occupation"].to_list() == ["K-12 student", "self-employed"]
    assert users["age"].to_list() == [1, 56]


def test_grouplens_ml10m_tags(tmp_path: Path) -> None:
    d = tmp_path / "ml-10M100K"
    write(d / "ratings.dat", "1::122::5::838985046\n1::185::4.5::838983525\n")
    write(d / "movies.dat", "122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action\n")
    write(d / "tags.dat", "15::122::excellent!::1215184630\n20::122::Excellent!::1\n")
    ds = load_grouplens(d)
    assert ds.name == "ml-10m"
    assert ds.interactions.rating.tolist() == [5.0, 4.5]
    assert ds.kg.triples.rows() == [("122", "tag", "tag:excellent!")]


def test_grouplens_csv_layout(ml20m_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    ds = load_grouplens(ml20m_dir / "ratings.csv")  # a file inside the folder works too
    assert ds.name == "ml-20m"
    assert len(ds.interactions) == 3 and len(ds.catalog) == 3
    cat = ds.catalog.frame
    assert cat["title"].to_list()[1] == "City of Lost Children, The (Cité des enfants perdus, La)"
    assert cat["year"].to_list() == [1995, 1995, None]
    assert cat["genres"].to_list()[2] == []
    triples = set(ds.kg.triples.rows())
    assert ("2", "tag", "tag:robin williams") in triples
    assert ("29", "tag", "tag:dark, weird") in triples
    assert ("2", "imdb", "imdb:tt0113497") in triples
    assert ("2", "tmdb", "tmdb:8844") in triples
    assert ("29", "imdb", "imdb:tt0112682") in triples
    assert not any(t[0] in ("777", "999") for t in triples)  # unknown movies dropped
    assert len(triples) == ds.kg.triples.height == 5
    assert "dropped 1 tag row(s)" in caplog.text
    assert "dropped 1 link row(s)" in caplog.text
    assert ds.interactions.rating.tolist() == [3.5, 4.0, 0.5]


def test_atomic(atomic_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    ds = load_atomic(atomic_dir, "toy")
    assert ds.name == "toy"
    cat = ds.catalog.frame
    assert cat["title"].to_list() == ["Toy Story", "Land Before Time III", "unkonwn"]
    assert cat["year"].to_list() == [1995, 1995, None]
    assert cat["genres"].to_list()[0] == ["Animation", "Children's", "Comedy"]
    assert ds.users.frame["age"].to_list() == [24, 53, 23]
    assert ds.interactions.timestamp.tolist() == [100, 101, 102]  # 102.7 floored
    assert set(ds.kg.triples.rows()) == {
        ("1", "film.film.directed_by", "m.lasseter"),
        ("m.lasseter", "film.director.film", "1"),
        ("1", "film.film.sequel", "2"),
        ("m.nine", "film.film.genre", "m.drama"),  # item 9 is not in the catalog
    }
    assert "dropped 1 link row(s) whose item_id is not in the catalog" in caplog.text
    assert "user id(s)" in caplog.text  # u3 has no interactions: kept, warned
    assert len(ds.users) == 3


def test_table_csv_iso_timestamps_and_items(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    log_ = write(
        tmp_path / "events.csv",
        "uid,title_id,when,what\n"
        "a,t1,2021-03-04T05:06:07Z,play\n"
        "a,t2,2021-03-04T07:06:07+02:00,COMPLETE\n"
        "b,t1,2021-03-05T00:00:00,view\n",
    )
    items = write(
        tmp_path / "titles.csv",
        "item_id,title,year,genres,kind,network,seasons,extra\n"
        't1,"Show, The",2019,Drama|Crime,show,HBO,3,x\n'
        "t2,Film,2001,Comedy,movie,,,y\n"
        "t3,Cold,1999,,movie,,,z\n",
    )
    mapping = ColumnMapping(
        user="uid", item="title_id", rating=None, timestamp="when", event="what"
    )
    ds = load_table(log_, columns=mapping, items_path=items)
    assert ds.name == "events"
    ts = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()
    assert ds.interactions.timestamp.tolist() == [ts, ts, ts + 18 * 3600 + 53 * 60 + 53]
    assert ds.interactions.has_ratings is False
    assert ds.interactions.event.tolist() == [1, 2, 0]  # play, complete, view
    cat = ds.catalog.frame
    assert cat["item_id"].to_list() == ["t1", "t2", "t3"]
    assert cat["kind"].to_list() == ["show", "movie", "movie"]
    assert cat["genres"].to_list() == [["Drama", "Crime"], ["Comedy"], []]
    assert cat["seasons"].to_list() == [3, None, None]
    assert "have no interactions; kept" in caplog.text  # t3


def test_table_default_mapping_rating_optional(tmp_path: Path) -> None:
    f = write(tmp_path / "log.tsv", "user_id\titem_id\ttimestamp\nu\ti\t1\nu\tj\t2\n")
    ds = load_table(f)
    assert ds.interactions.has_ratings is False
    assert ds.interactions.event.tolist() == [0, 0]  # "view" without ratings


def test_table_parquet(tmp_path: Path) -> None:
    log_ = tmp_path / "log.parquet"
    pl.DataFrame(
        {
            "user_id": [1, 1, 2],
            "item_id": ["x", "y", "x"],
            "rating": [4.0, None, 2.5],
            "timestamp": [datetime(2020, 1, 1), datetime(2020, 1, 2), datetime(2020, 1, 3)],
        }
    ).write_parquet(log_)
    items = tmp_path / "items.parquet"
    pl.DataFrame(
        {"item_id": ["x", "y"], "title": ["X", "Y"], "genres": [["A", "B"], []]}
    ).write_parquet(items)
    ds = load_table(log_, items_path=items)
    assert ds.interactions.timestamp.tolist() == [1577836800, 1577923200, 1578009600]
    assert np.isnan(ds.interactions.rating[1]) and ds.interactions.rating[2] == 2.5
    assert ds.catalog.frame["genres"].to_list() == [["A", "B"], []]
    assert ds.interactions.users.ids() == ["1", "2"]


def test_manifest_records_input_sha256(ml20m_dir: Path) -> None:
    ds = load_grouplens(ml20m_dir)
    expected = {f.name: sha(f) for f in ml20m_dir.iterdir()}
    assert ds.manifest["inputs_sha256"] == expected
    assert ds.manifest["counts"]["interactions"] == 3
    assert ds.manifest["source"] == str(ml20m_dir.resolve())


def test_load_any_dispatch(
    ml100k_dir: Path, ml1m_dir: Path, atomic_dir: Path, tmp_path: Path
) -> None:
    assert load_any(ml100k_dir).name == "ml-100k"
    assert load_any(ml1m_dir).name == "ml-1m"
    assert load_any(atomic_dir).name == "toy"
    assert load_any(atomic_dir / "toy.inter").name == "toy"
    f = write(tmp_path / "plain.csv", "user_id,item_id,rating,timestamp\na,b,1,2\n")
    assert load_any(f).name == "plain"
    lone = write(tmp_path / "solo" / "ratings.csv", "user_id,item_id,rating,timestamp\na,b,1,2\n")
    assert resolve_source(lone).kind == "table"  # not in a MovieLens folder: a generic log
    assert resolve_source(ml1m_dir / "ratings.dat").kind == "grouplens"
    assert load_any(tmp_path / "ml-1m" / "ratings.dat", name="mine").name == "mine"
    with pytest.raises(FileNotFoundError, match="nor a known dataset name"):
        load_any(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not a MovieLens folder"):
        load_any(write(tmp_path / "empty-dir" / "readme.txt", "hi").parent)
    with pytest.raises(ValueError, match="unknown table format"):
        load_any(write(tmp_path / "x.json", "{}"))


# --------------------------------------------------------------------- prepare cache
def test_prepare_cache_hit_and_invalidate(
    ml20m_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / "home"))
    calls: list[str] = []
    real = movielens.load_grouplens

    def counting(*args, **kwargs):
        calls.append("load")
        return real(*args, **kwargs)

    monkeypatch.setattr("primetime.data.loaders.load_grouplens", counting)
    first = prepare(ml20m_dir)
    cache = tmp_path / "home" / "datasets" / "ml-20m"
    assert (cache / "manifest.json").is_file() and (cache / "prepare.json").is_file()
    assert calls == ["load"]

    again = prepare(ml20m_dir)
    assert calls == ["load"]  # read back from Parquet
    assert again.manifest == first.manifest
    np.testing.assert_array_equal(again.interactions.item_idx, first.interactions.item_idx)
    assert again.catalog.frame.equals(first.catalog.frame)
    assert again.kg.triples.sort("head", "relation", "tail").equals(
        first.kg.triples.sort("head", "relation", "tail")
    )

    with open(ml20m_dir / "ratings.csv", "a") as f:
        f.write("3,50,2.0,1112484900\n")
    changed = prepare(ml20m_dir)
    assert calls == ["load", "load"]
    assert len(changed.interactions) == 4
    key = json.loads((cache / "prepare.json").read_text())
    assert key["inputs_sha256"]["ratings.csv"] == sha(ml20m_dir / "ratings.csv")

    prepare(ml20m_dir, force=True)
    assert calls == ["load", "load", "load"]


def test_prepare_table_options_are_part_of_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / "home"))
    f = write(tmp_path / "log.csv", "user_id,item_id,rating,timestamp,u2\na,b,1,2,z\n")
    assert prepare(f).interactions.users.ids() == ["a"]
    assert prepare(f, columns=ColumnMapping(user="u2")).interactions.users.ids() == ["z"]
    assert resolve_source(f).options["columns"] is None


# --------------------------------------------------------------------- bad input
def _ratings_with_bad_line_7(tmp_path: Path) -> Path:
    rows = [f"u{k},i{k},{k % 5 + 1},{1000 + k}" for k in range(10)]
    rows[5] = "u5,i5,abc,1005"  # data row 6 = line 7 (header is line 1)
    return write(tmp_path / "bad.csv", "user_id,item_id,rating,timestamp\n" + "\n".join(rows))


def test_bad_rating_names_file_line_and_column(tmp_path: Path) -> None:
    f = _ratings_with_bad_line_7(tmp_path)
    with pytest.raises(DataFormatError) as err:
        load_table(f)
    msg = str(err.value)
    assert str(f) in msg and "line 7" in msg and "column 'rating'" in msg and "'abc'" in msg
    assert (err.value.line, err.value.column) == (7, "rating")


def test_bad_rating_line_counts_blank_and_multiline_rows(tmp_path: Path) -> None:
    f = write(tmp_path / "q.csv", 'user_id,item_id,rating,timestamp\n"a\nb",x,1,1\n\nc,y,bad,2\n')
    with pytest.raises(DataFormatError, match=r"line 5, column 'rating'"):
        load_table(f)


@pytest.mark.parametrize(
    ("layout", "files", "line", "column"),
    [
        (
            "ml-100k",
            {
                "u.data": "1\t1\t5\t1\n1\t2\tx\t2\n",
                "u.item": "1|A (1995)|||u|"
                + "|".join("0" * 19)
                + "\n2|B|||u|"
                + "|".join("0" * 19)
                + "\n",
            },
            2,
            "rating",
        ),
        (
            "ml-1m",
            {
                "ratings.dat": "1::1::5::1\n1::1::4::soon\n",
                "movies.dat": "1::A::Drama\n",
                "users.dat": "1::F::1::10::48067\n",
            },
            2,
            "timestamp",
        ),
        (
            "csv",
            {
                "ratings.csv": "userId,movieId,rating,timestamp\n1,1,5,1\n1,1,nan,1\n",
                "movies.csv": "movieId,title,genres\n1,A,Drama\n",
            },
            3,
            "rating",
        ),
    ],
)
def test_bad_values_in_grouplens_layouts(
    tmp_path: Path, layout: str, files: dict[str, str], line: int, column: str
) -> None:
    for fname, text in files.items():
        write(tmp_path / layout / fname, text)
    with pytest.raises(DataFormatError) as err:
        load_grouplens(tmp_path / layout)
    assert f"line {line}" in str(err.value) and f"column '{column}'" in str(err.value)


def test_bad_value_in_atomic(atomic_dir: Path) -> None:
    write(
        atomic_dir / "toy.inter",
        "user_id:token\titem_id:token\trating:float\nu1\t1\t4\nu1\t2\tfive\n",
    )
    with pytest.raises(DataFormatError, match=r"toy\.inter, line 3, column 'rating'"):
        load_atomic(atomic_dir, "toy")


@pytest.mark.parametrize(
    ("fname", "text", "line", "found"),
    [
        ("t.csv", "user_id,item_id,rating,timestamp\na,b,1,1\na,c,2,2,9\n", 3, 5),
        ("t.csv", "user_id,item_id,rating,timestamp\na,b,1,1\na,c,2\na,d,3,3\n", 3, 3),
        ("t.tsv", "user_id\titem_id\trating\ttimestamp\na\tb\t1\t1\n\na\tb\n", 4, 2),
    ],
)
def test_wrong_field_count(tmp_path: Path, fname: str, text: str, line: int, found: int) -> None:
    f = write(tmp_path / fname, text)
    with pytest.raises(DataFormatError) as err:
        load_table(f)
    assert str(f) in str(err.value)
    assert f"line {line}:" in str(err.value) and f"found {found}" in str(err.value)


def test_wrong_field_count_double_colon(ml1m_dir: Path) -> None:
    write(ml1m_dir / "ratings.dat", "1::1193::5::978300760\n1::661::3\n")
    with pytest.raises(DataFormatError, match=r"ratings\.dat, line 2: expected 4 fields"):
        load_grouplens(ml1m_dir)
    write(ml1m_dir / "ratings.dat", "1::1193::5::978300760\n1::661::3::1::7\n")
    with pytest.raises(DataFormatError, match=r"ratings\.dat, line 2: expected 4 fields .*found 5"):
        load_grouplens(ml1m_dir)


def test_wrong_field_count_atomic(atomic_dir: Path) -> None:
    write(
        atomic_dir / "toy.kg",
        "head_id:token\trelation_id:token\ttail_id:token\nm.toy\tr\tm.x\nm.toy\tr\n",
    )
    with pytest.raises(DataFormatError, match=r"toy\.kg, line 3: expected 3 fields"):
        load_atomic(atomic_dir, "toy")


def test_missing_required_columns(tmp_path: Path, ml20m_dir: Path, atomic_dir: Path) -> None:
    f = write(tmp_path / "log.csv", "user,item_id,timestamp\na,b,1\n")
    with pytest.raises(DataFormatError) as err:
        load_table(f)
    assert str(f) in str(err.value) and "['user_id']" in str(err.value)
    assert err.value.line == 1

    with pytest.raises(DataFormatError, match=r"missing required column\(s\) \['rating'\]"):
        load_table(f, columns=ColumnMapping(user="user"))

    pq = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": ["a"], "ts": [1]}).write_parquet(pq)
    with pytest.raises(
        DataFormatError, match=r"log\.parquet: missing .*\['item_id', 'timestamp'\]"
    ):
        load_table(pq)

    write(ml20m_dir / "ratings.csv", "userId,movieId,timestamp\n1,2,3\n")
    with pytest.raises(DataFormatError, match=r"ratings\.csv, line 1: missing .*\['rating'\]"):
        load_grouplens(ml20m_dir)

    write(atomic_dir / "toy.inter", "user_id:token\trating:float\nu\t1\n")
    with pytest.raises(DataFormatError, match=r"toy\.inter, line 1: missing .*\['item_id'\]"):
        load_atomic(atomic_dir, "toy")


def test_bad_atomic_header(atomic_dir: Path) -> None:
    write(atomic_dir / "toy.inter", "user_id:token\titem_id:blob\nu\ti\n")
    with pytest.raises(DataFormatError, match=r"line 1, column 'item_id:blob': unknown field type"):
        load_atomic(atomic_dir, "toy")


@pytest.mark.parametrize("text", ["", "user_id,item_id,rating,timestamp\n", "\n\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    f = write(tmp_path / "empty.csv", text)
    with pytest.raises(DataFormatError) as err:
        load_table(f)
    assert str(f) in str(err.value)
    assert any(
        s in str(err.value) for s in ("file is empty", "no data rows", "header line is blank")
    )


def test_empty_grouplens_ratings(ml1m_dir: Path) -> None:
    write(ml1m_dir / "ratings.dat", "")
    with pytest.raises(DataFormatError, match=r"ratings\.dat: file is empty"):
        load_grouplens(ml1m_dir)


def test_exact_duplicate_rows_dropped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    f = write(tmp_path / "dup.csv", "user_id,item_id,rating,timestamp\na,b,1,1\na,b,1,1\na,b,2,1\n")
    ds = load_table(f)
    assert len(ds.interactions) == 2
    assert "dropped 1 exact duplicate" in caplog.text


def test_side_file_ids_unknown_to_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    f = write(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,1\nb,y,2\n")
    items = write(tmp_path / "items.csv", "item_id,title\nx,X\nz,Z\n")
    users = write(tmp_path / "users.csv", "user_id,age\na,30\nc,abc\n")
    ds = load_table(f, items_path=items, users_path=users)
    assert ds.catalog.frame["item_id"].to_list() == ["x", "z", "y"]  # z kept, y added
    assert ds.users.frame["user_id"].to_list() == ["a", "c", "b"]
    assert ds.users.frame["age"].to_list() == [30, None, None]
    text = caplog.text
    assert "1 item id(s)" in text and "have no interactions" in text
    assert "missing from the catalog" in text  # y
    assert "1 user id(s)" in text
    assert "not an integer" in text and "line 3" in text  # age 'abc'


def test_duplicate_ids_in_side_files(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,1\n")
    items = write(tmp_path / "items.csv", "item_id,title\nx,X\ny,Y\nx,X again\n")
    with pytest.raises(DataFormatError, match=r"items\.csv, line 4, column 'item_id'.*twice"):
        load_table(f, items_path=items)


def test_bad_timestamp_and_event(tmp_path: Path) -> None:
    f = write(tmp_path / "t.csv", "user_id,item_id,timestamp\na,x,2021-01-01\nb,y,yesterday\n")
    with pytest.raises(DataFormatError, match=r"line 3, column 'timestamp'.*'yesterday'"):
        load_table(f)
    f = write(tmp_path / "n.csv", "user_id,item_id,timestamp\na,x,5\nb,y,\n")
    with pytest.raises(DataFormatError, match=r"line 3, column 'timestamp'.*empty value"):
        load_table(f)
    f = write(tmp_path / "e.csv", "user_id,item_id,timestamp,event\na,x,1,view\nb,y,2,binge\n")
    with pytest.raises(DataFormatError, match=r"line 3, column 'event'.*'binge'"):
        load_table(f, columns=ColumnMapping(rating=None, event="event"))
    f = write(tmp_path / "i.csv", "user_id,item_id,timestamp\na,x,1\n ,y,2\n")
    with pytest.raises(DataFormatError, match=r"line 3, column 'user_id'.*empty value"):
        load_table(f)


def test_bad_value_in_parquet_names_the_row(tmp_path: Path) -> None:
    pq = tmp_path / "log.parquet"
    pl.DataFrame(
        {"user_id": ["a", "b"], "item_id": ["x", "y"], "rating": ["4", "lots"], "timestamp": [1, 2]}
    ).write_parquet(pq)
    with pytest.raises(DataFormatError, match=r"log\.parquet, column 'rating': row 2"):
        load_table(pq)


def test_latin1_is_read_when_not_utf8(tmp_path: Path) -> None:
    f = write(tmp_path / "log.csv", "user_id,item_id,timestamp\nRené,x,1\n", encoding="latin-1")
    assert load_table(f).interactions.users.ids() == ["René"]


# --------------------------------------------------------------------- fetch_ml100k offline
def _fake_wheel(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A tiny stand-in for the recbole wheel, and the sha256 of the files in it."""
    files = {
        "ml-100k.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t4\t100\n2\t10\t5\t200\n",
        "ml-100k.item": "item_id:token\tmovie_title:token_seq\trelease_year:token\t"
        "class:token_seq\n10\tToy Story\t1995\tAnimation\n",
        "ml-100k.user": "user_id:token\tage:token\tgender:token\toccupation:token\t"
        "zip_code:token\n1\t24\tM\tx\t1\n2\t25\tF\ty\t2\n",
        "ml-100k.link": "item_id:token\tentity_id:token\n10\tm.toy\n",
        "ml-100k.kg": "head_id:token\trelation_id:token\ttail_id:token\nm.toy\tr\tm.x\n",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(recbole_wheel.ML100K_WHEEL_DIR + name, text)
    wheel = tmp_path / "wheel-src" / recbole_wheel.RECBOLE_WHEEL
    wheel.parent.mkdir()
    wheel.write_bytes(buf.getvalue())
    shas = {n: hashlib.sha256(t.encode()).hexdigest() for n, t in files.items()}
    return wheel, shas


def _fake_pip(
    monkeypatch: pytest.MonkeyPatch, *, wheel: Path | None, returncode: int = 0, stderr: str = ""
) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        assert "recbole==1.2.1" in cmd
        if wheel is not None and returncode == 0:
            dest = Path(cmd[cmd.index("-d") + 1])
            (dest / recbole_wheel.RECBOLE_WHEEL).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)

    monkeypatch.setattr(recbole_wheel.subprocess, "run", run)
    return calls


def test_fetch_ml100k_downloads_verifies_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, shas = _fake_wheel(tmp_path)
    monkeypatch.setattr(recbole_wheel, "RECBOLE_WHEEL_SHA256", sha(wheel))
    monkeypatch.setattr(recbole_wheel, "ML100K_ATOMIC_SHA256", shas)
    calls = _fake_pip(monkeypatch, wheel=wheel)
    cache = tmp_path / "dl"
    out = fetch_ml100k(cache_dir=cache)
    assert out == cache / "ml-100k-atomic" and len(calls) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(shas)
    assert fetch_ml100k(cache_dir=cache) == out and len(calls) == 1  # cached: no pip

    (out / "ml-100k.kg").write_text("tampered\n")  # damaged cache: unpacked again, no pip
    assert fetch_ml100k(cache_dir=cache) == out and len(calls) == 1
    assert sha(out / "ml-100k.kg") == shas["ml-100k.kg"]

    ds = load_ml100k(cache_dir=cache)
    assert ds.name == "ml-100k" and len(ds.interactions) == 2
    assert ds.kg.triples.rows() == [("10", "r", "m.x")]
    assert ds.manifest["source"].startswith("pypi:recbole==1.2.1")


def test_fetch_ml100k_sha_mismatch_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, _ = _fake_wheel(tmp_path)  # its sha is not the published wheel's
    _fake_pip(monkeypatch, wheel=wheel)
    cache = tmp_path / "dl"
    with pytest.raises(ChecksumError) as err:
        fetch_ml100k(cache_dir=cache)
    assert str(cache / recbole_wheel.RECBOLE_WHEEL) in str(err.value)
    assert recbole_wheel.RECBOLE_WHEEL_SHA256 in str(err.value)
    assert "delete it" in str(err.value)
    assert not (cache / "ml-100k-atomic").exists()


def test_fetch_ml100k_registry_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_pip(
        monkeypatch,
        wheel=None,
        returncode=1,
        stderr="ERROR: Could not find a version that satisfies the requirement "
        "recbole==1.2.1 (from versions: none)",
    )
    with pytest.raises(RuntimeError) as err:
        fetch_ml100k(cache_dir=tmp_path / "dl")
    msg = str(err.value)
    assert len(calls) == 1
    assert "is the package index reachable" in msg
    assert "from versions: none" in msg  # pip's own words
    assert recbole_wheel.RECBOLE_WHEEL in msg and str(tmp_path / "dl") in msg
    assert "--data PATH" in msg and "u.data" in msg


def test_fetch_ml100k_pip_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(cmd: list[str], **kwargs: object) -> None:
        raise FileNotFoundError("python")

    monkeypatch.setattr(recbole_wheel.subprocess, "run", run)
    with pytest.raises(RuntimeError, match="could not run pip"):
        fetch_ml100k(cache_dir=tmp_path / "dl")


# --------------------------------------------------------------------- the real thing
@pytest.mark.integration
def test_load_ml100k_real(ml100k: Dataset) -> None:
    """Downloads the recbole wheel with pip (network) and loads MovieLens-100k."""
    ds = ml100k
    assert len(ds.interactions) == 100_000
    assert len(ds.users) == 943
    assert len(ds.catalog) == 1_682
    assert len(ds.kg) > 0
    assert ds.manifest["inputs_sha256"] == recbole_wheel.ML100K_ATOMIC_SHA256
