import pytest

from matserve.generator.tokenizer import Tokenizer, normalize
from matserve.generator.vocab import SPACE_GROUPS, TOKENS
from tests.matserve.generator.conftest import VOCAB_TXT

tokenizer = Tokenizer()


def test_ids_are_the_ids_of_vocab_txt():
    if not VOCAB_TXT.exists():
        pytest.skip(f"{VOCAB_TXT} is not here")
    lines = VOCAB_TXT.read_text().splitlines()
    expected = [{"<space>": " ", "<newline>": "\n"}.get(line, line) for line in lines]
    assert list(TOKENS) == expected
    for i, token in enumerate(expected):
        assert tokenizer.ids[token] == i


def test_landmark_ids():
    assert tokenizer.vocab_size == 371
    assert tokenizer.ids["data_"] == 124
    assert tokenizer.newline_id == 142
    assert tokenizer.unk_id == 370
    assert tokenizer.ids["Fm-3m_sg"] == TOKENS.index("Fm-3m_sg")
    assert len(SPACE_GROUPS) == 227


def test_round_trip_on_real_cifs(crystallm_cifs):
    for name, cif in crystallm_cifs.items():
        ids = tokenizer.encode(cif)
        assert tokenizer.unk_id not in ids, name
        assert tokenizer.decode(ids) == cif, name
        # the space group is one token, written once
        sg = next(line for line in cif.splitlines() if line.startswith("_symmetry_space_group_name_H-M")).split()[1]
        assert ids.count(tokenizer.ids[sg + "_sg"]) == 1, name
        # and the text ends as generation stops: two newlines
        assert ids[-2:] == [142, 142]


def test_bate_cif_length_and_opening(crystallm_cifs):
    ids = tokenizer.encode(crystallm_cifs["BaTe"])
    assert tokenizer.tokenize(crystallm_cifs["BaTe"])[:7] == ["data_", "Ba", "4", "Te", "4", "\n", "loop_"]
    assert len(ids) == 258


def test_numbers_are_one_digit_per_token_and_spaces_collapse():
    assert tokenizer.tokenize("_cell_length_a   12.50\t\t 7\n") == [
        "_cell_length_a", " ", "1", "2", ".", "5", "0", " ", "7", "\n"]
    assert tokenizer.decode(tokenizer.encode("x  \t y")) == normalize("x  \t y") == "x y"


def test_longest_match_wins():
    assert tokenizer.tokenize("Co Sc Sn Cs") == ["Co", " ", "Sc", " ", "Sn", " ", "Cs"]
    assert tokenizer.tokenize("'-x+1/2, y, z'") == [
        "'", "-", "x", "+", "1", "/", "2", ",", " ", "y", ",", " ", "z", "'"]


def test_space_group_token_only_after_its_tag():
    assert tokenizer.tokenize("_symmetry_space_group_name_H-M Pm\n") == [
        "_symmetry_space_group_name_H-M", " ", "Pm_sg", "\n"]
    assert tokenizer.tokenize("_symmetry_space_group_name_H-M    P2_1/c\n")[2] == "P2_1/c_sg"
    assert tokenizer.tokenize("Pm Pm0 1\n") == ["Pm", " ", "Pm", "0", " ", "1", "\n"]  # the element
    ids = tokenizer.encode("_symmetry_space_group_name_H-M P1\n")
    assert tokenizer.decode(ids) == "_symmetry_space_group_name_H-M P1\n"
    assert len(ids) == 4


def test_unknown_words_become_unk():
    assert tokenizer.tokenize("_cell_measurement_temperature 293\n") == ["<unk>", " ", "2", "9", "3", "\n"]
    assert tokenizer.tokenize("# x") == ["<unk>", " ", "x"]
    # a group without a token (P6 is one of three) falls back to ordinary tokens
    assert tokenizer.tokenize("_symmetry_space_group_name_H-M P6\n")[2:] == ["P", "6", "\n"]
