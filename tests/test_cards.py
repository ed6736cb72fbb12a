"""The model cards page (book/models.md) is what mixlib.cards generates from the registries."""
import pytest

from mixlib import cards, models


def test_the_committed_model_cards_are_up_to_date():
    assert cards.PAGE.read_text() == cards.render(), "stale: run python -m mixlib.cards"


def test_every_paper_model_has_a_card_entry():
    imagenet = [n for n in models.available() if not n.endswith(("_cifar", "_imagenette"))
                and n not in ("denseconv_cifar", "dwconv_refnet_cifar")]
    assert sorted(cards.PAPER_MODELS) == sorted(imagenet)


def test_a_card_says_paper_size_and_what_was_verified():
    card = cards.model_card("convnext_t")
    timm = pytest.importorskip("timm")
    # the card counts the model it describes; timm's twin has the same parameters
    reference = sum(p.numel() for p in timm.create_model("convnext_tiny").parameters())
    assert card["paper"] == "liu2022convnext" and card["params"] == reference
    assert card["image_size"] == 224 and card["mixers"] == ["dwconv"]
    assert "timm's convnext_tiny" in card["verified"]


def test_a_card_names_a_mixer_that_is_part_of_another():
    """HorNet-GF's GlobalLocalFilter lives inside gnConv and is not a registered mixer; its card
    names it, and the 7×7 form's does not."""
    from mixlib.cards import model_card
    assert "GlobalLocalFilter" in model_card("hornet_t_gf")["mixers"]
    assert "GlobalLocalFilter" not in model_card("hornet_t_7x7")["mixers"]
