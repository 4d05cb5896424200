"""Item texts: what the catalog and the knowledge graph know about a title, as sentences."""

from __future__ import annotations

import polars as pl

from primetime.data.catalog import Catalog
from primetime.data.graph import KnowledgeGraph
from primetime.data.side import SideData, item_texts


def graph(*triples: tuple[str, str, str]) -> KnowledgeGraph:
    return KnowledgeGraph.from_frame(
        pl.DataFrame(list(triples), schema=["head", "relation", "tail"], orient="row")
    )


def test_movielens_facts_become_counts_in_words() -> None:
    catalog = Catalog.from_frame(
        pl.DataFrame(
            {
                "item_id": ["50", "172", "9"],
                "title": ["Star Wars", "Empire Strikes Back, The", "Untitled"],
                "year": [1977, 1980, None],
                "genres": [["Action", "Sci-Fi"], ["Action"], []],
            }
        )
    )
    kg = graph(
        *[("50", "film.film.actor", f"m.a{k}") for k in range(24)],
        ("50", "film.film.actor", "m.a0"),  # repeated: counted once
        ("50", "film.film.directed_by", "m.d"),
        ("50", "film.film.written_by", "m.w1"),
        ("50", "film.film.written_by", "m.w2"),
        *[("50", "film.film.award_won", f"m.aw{k}") for k in range(4)],
        ("50", "film.film.sequel", "172"),
        ("50", "film.film.genre", "m.g1"),  # Freebase genres are ids: not words
        ("50", "film.film.rating", "m.pg"),  # a relation without words: left out
        ("m.d", "film.director.film", "50"),  # the title as a tail: not its fact
        ("172", "film.film.prequel", "50"),
        ("172", "film.film.language", "m.en"),
        ("172", "film.film.language", "m.fr"),
        ("172", "film.film.country", "m.us"),
        ("172", "film.film.produced_by", "m.p"),
        ("172", "film.film.award_nomination", "m.n"),
    )
    texts = item_texts(catalog, kg)
    assert texts == (
        "",
        "Star Wars (1977). Genres: Action, Sci-Fi. 24 cast members, 1 director, 2 writers, "
        "4 awards won, a sequel.",
        "Empire Strikes Back, The (1980). Genres: Action. 1 producer, 1 award nomination, "
        "2 languages, 1 country, a prequel.",
        "Untitled.",
    )
    # without a graph: the catalog alone
    assert item_texts(catalog)[1] == "Star Wars (1977). Genres: Action, Sci-Fi."


def test_synthetic_titles_name_kind_network_subgenres_people_and_description() -> None:
    catalog = Catalog.from_frame(
        pl.DataFrame(
            {
                "item_id": ["m1", "tv1-s01", "tv1-s02"],
                "title": ["The Glass Horizon", "Midnight — Season 1", "Midnight — Season 2"],
                "year": [1998, 2004, 2005],
                "genres": [
                    ["Heist", "Thriller"],
                    ["Crime Drama", "Drama"],
                    ["Crime Drama", "Drama"],
                ],
                "kind": ["movie", "show", "show"],
                "network": [None, "Northstar+", "Northstar+"],
                "series_id": [None, "tv1", "tv1"],
                "season_number": [None, 1, 2],
                "cast": [["Hana Bianchi", "Omar Yilmaz"], ["Ivan Reyes"], ["Ivan Reyes"]],
                "description": ["A tense heist film.", "Season 1 of Midnight. A crime series.", ""],
            }
        )
    )
    people = [
        ("m1", "actor", "person:Hana Bianchi"),
        ("m1", "actor", "person:Omar Yilmaz"),
        ("m1", "director", "person:Tariq Sato"),
        ("m1", "writer", "person:Yuki Lindqvist"),
        ("m1", "writer", "person:Omar Abara"),
        ("m1", "genre", "genre:Thriller"),
        ("m1", "subgenre", "genre:Heist"),
    ]
    seasons = [
        (s, rel, tail)
        for s in ("tv1-s01", "tv1-s02")
        for rel, tail in [
            ("actor", "person:Ivan Reyes"),
            ("actor", "person:Kai Mwangi"),
            ("actor", "person:Nora Sato"),
            ("actor", "person:Clara Mwangi"),
            ("creator", "person:Iris Park"),
            ("genre", "genre:Drama"),
            ("subgenre", "genre:Crime Drama"),
            ("network", "network:Northstar+"),
            ("season_of", "series:tv1"),
        ]
    ]
    kg = graph(
        *people,
        *seasons,
        ("tv1-s01", "next_season", "tv1-s02"),
        ("genre:Heist", "subgenre_of", "genre:Thriller"),
    )
    assert item_texts(catalog, kg) == (
        "",
        "The Glass Horizon (1998). Movie. Genres: Thriller. Subgenres: Heist. "
        "Directed by Tariq Sato. Written by Yuki Lindqvist and Omar Abara. "
        "Starring Hana Bianchi and Omar Yilmaz. A tense heist film.",
        # the description already says which season: not repeated
        "Midnight — Season 1 (2004). On Northstar+. Genres: Drama. Subgenres: Crime Drama. "
        "Created by Iris Park. Starring Ivan Reyes, Kai Mwangi and Nora Sato. "
        "Season 1 of Midnight. A crime series.",
        "Midnight — Season 2 (2005). Season 2 of Midnight. On Northstar+. Genres: Drama. "
        "Subgenres: Crime Drama. Created by Iris Park. "
        "Starring Ivan Reyes, Kai Mwangi and Nora Sato.",
    )
    # without a graph: the catalog's cast, the genres in one list
    assert item_texts(catalog)[3] == (
        "Midnight — Season 2 (2005). Season 2 of Midnight. On Northstar+. "
        "Genres: Crime Drama, Drama. Starring Ivan Reyes."
    )


def test_people_known_only_by_id_are_counted() -> None:
    catalog = Catalog.from_frame(pl.DataFrame({"item_id": ["a"], "title": ["A"], "year": [2001]}))
    kg = graph(
        ("a", "actor", "person:000001"),
        ("a", "actor", "person:000002"),
        ("a", "creator", "person:000003"),
    )
    assert item_texts(catalog, kg) == ("", "A (2001). 2 cast members, 1 creator.")


def test_side_data_build_passes_the_graph_to_the_texts() -> None:
    catalog = Catalog.from_frame(pl.DataFrame({"item_id": ["a"], "title": ["A"], "year": [2001]}))
    side = SideData.build(catalog=catalog, kg=graph(("a", "film.film.sequel", "b")))
    assert side.item_texts == ("", "A (2001). A sequel.")
    assert SideData.build(catalog=catalog, kg=KnowledgeGraph.empty()).item_texts == (
        "",
        "A (2001).",
    )
