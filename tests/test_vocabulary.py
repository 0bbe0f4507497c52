"""One vocabulary: the migrations spell the classes, movements and sources out literally (a shipped
migration never changes), and they must say what labeling.vocabulary says."""
import re

from labeling.vocabulary import CLASSES, MOVEMENTS, ORDINAL_ORDER, SOURCES, side_and_degree


def in_lists(sql: str, column: str) -> list[set[str]]:
    """The value sets of every `column IN (...)` check in `sql`."""
    return [set(re.findall(r"'([^']*)'", m)) for m in re.findall(rf"\b{column} IN \(([^)]*)\)", sql)]


def test_the_database_checks_say_what_the_vocabulary_says(db):
    schema = "\n".join(r[0] for r in db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())
    for column, words in (("label", CLASSES), ("consensus", CLASSES), ("predicted", CLASSES),
                          ("movement", MOVEMENTS), ("source", SOURCES)):
        found = in_lists(schema, column)
        assert found and all(values == set(words) for values in found), column
    columns = [r[1] for r in db.execute("PRAGMA table_info(model_predictions)").fetchall()]
    assert [c for c in columns if c.startswith("prob_")] == [f"prob_{c}" for c in CLASSES]


def test_the_ordinal_scale_runs_from_left_severe_to_right_severe():
    signed = [(-1 if side == "L" else 1) * degree for side, degree in map(side_and_degree, ORDINAL_ORDER)]
    assert signed == sorted(signed) == [-3, -2, -1, 0, 1, 2, 3] and set(ORDINAL_ORDER) == set(CLASSES)
