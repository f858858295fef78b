import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unigrounding.layers import IGNORE, pad_batch
from unigrounding.models.chat import VicunaFormat, place_image
from unigrounding.models.tokenizer import build_shapesref_tokenizer

TOK = build_shapesref_tokenizer()


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
def test_any_printable_ascii_decodes_byte_exact_without_unk(text):
    ids = TOK(text, add_special_tokens=False).input_ids
    assert TOK.unk_token_id not in ids
    assert TOK.decode(ids) == text


def test_digits_are_single_tokens_and_words_whole():
    tokens = TOK.convert_ids_to_tokens(
        TOK(" the red circle [0.12,0.5]", add_special_tokens=False).input_ids
    )
    assert tokens[:3] == ["▁the", "▁red", "▁circle"]
    assert tokens[4:8] == ["[", "0", ".", "1"]


def test_only_answers_are_supervised_and_image_expands():
    turns = [
        {"role": "user", "text": "<image>\nWhere is the red circle?"},
        {"role": "assistant", "text": "[0.1,0.2,0.3,0.4]"},
        {"role": "user", "text": "Where is the square?"},
        {"role": "assistant", "text": "[0.5,0.5,0.9,0.9]"},
    ]
    ids, labels = VicunaFormat(TOK).encode(turns, num_image_tokens=7, with_last_answer=True)
    assert ids.count(TOK.convert_tokens_to_ids("<image>")) == 7
    supervised = TOK.decode([i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE])
    assert supervised == " [0.1,0.2,0.3,0.4]</s> [0.5,0.5,0.9,0.9]</s>"
    prompt, _ = VicunaFormat(TOK).encode(turns, num_image_tokens=7, with_last_answer=False)
    assert TOK.decode(prompt[-3:]) == " ASSISTANT:" or TOK.decode(prompt).endswith("ASSISTANT:")
    assert len(prompt) < len(ids)


def test_left_padding_for_generation():
    ids, mask = pad_batch([[1, 2, 3], [4]], pad=0, left=True)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_image_placement_after_text_puts_the_image_behind_the_question():
    assert place_image("<image>\nWhere is it?", "after_text") == "Where is it?\n<image>"
    assert place_image("<image>\nWhere is it?", "as_written") == "<image>\nWhere is it?"
    assert place_image("Where is it?", "after_text") == "Where is it?"
    with pytest.raises(ValueError, match="placement"):
        place_image("x", "middle")
    turns = [
        {"role": "user", "text": "<image>\nWhere is the red circle?"},
        {"role": "assistant", "text": "[0.1,0.2,0.3,0.4]"},
    ]
    ids, _ = VicunaFormat(TOK).encode(turns, 5, True, image_placement="after_text")
    image = TOK.convert_tokens_to_ids("<image>")
    first = ids.index(image)
    assert ids[first : first + 5] == [image] * 5
    assert "circle?" in TOK.decode(ids[:first]).replace(" ", "")
    assert "ASSISTANT:" in TOK.decode(ids[first + 5 :])


def test_conversation_encoding_follows_tokens_added_after_first_use():
    """Encodings are cached per text; a token added later must not be split
    by a stale entry."""
    tok = build_shapesref_tokenizer()
    turns = [
        {"role": "user", "text": "<image>\nWhere is <zz>?"},
        {"role": "assistant", "text": "<zz>"},
    ]
    before, _ = VicunaFormat(tok).encode(turns, 2, True)
    tok.add_tokens(["<zz>"], special_tokens=True)
    after, _ = VicunaFormat(tok).encode(turns, 2, True)
    zz = tok.convert_tokens_to_ids("<zz>")
    assert zz not in before and after.count(zz) == 2
    fresh = build_shapesref_tokenizer()  # the token added before any encoding
    fresh.add_tokens(["<zz>"], special_tokens=True)
    assert after == VicunaFormat(fresh).encode(turns, 2, True)[0]
