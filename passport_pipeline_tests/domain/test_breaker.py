import pytest

from passport_pipeline.domain.breaker import GENERATED, halt_reason, unusable_streak

BAD = "INVALID_IMAGE"
HTML = "BAD_RESPONSE"


@pytest.mark.parametrize(
    ("outcomes", "halt_on"),
    [
        ([], None),
        ([BAD] * 9, None),  # not yet a streak
        ([BAD] * 10, BAD),  # the first users all failed the same way
        ([BAD] * 25, BAD),
        ([HTML] * 10, HTML),
        ([GENERATED] * 40 + [BAD] * 10, BAD),  # the model broke mid-month
        ([BAD] * 9 + [GENERATED], None),  # a cover among them: the model works
        ([BAD] * 5 + [GENERATED] + [BAD] * 4, None),
        ([BAD] * 5 + [HTML] * 5, None),  # two different faults: not one broken model
        ([GENERATED] * 20 + [BAD] + [GENERATED] * 20, None),  # one bad user among good ones
        ([GENERATED] * 10, None),
    ],
)
def test_a_streak_of_the_same_unusable_answer_halts(outcomes, halt_on):
    assert unusable_streak(outcomes, threshold=10) == halt_on


@pytest.mark.parametrize(("threshold", "halt_on"), [(1, BAD), (3, BAD), (4, None)])
def test_the_threshold(threshold, halt_on):
    assert unusable_streak([GENERATED, BAD, BAD, BAD], threshold) == halt_on


def test_a_threshold_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        unusable_streak([BAD], threshold=0)


def test_the_halt_names_the_streak_the_reason_and_an_example():
    said = halt_reason(BAD, 10, "user 7: Gemini returned an unusable image")
    assert "last 10 answers" in said and f"({BAD})" in said and "user 7" in said
