"""fastnn/nested.py: the one nested-list flattener and structure."""
import numpy as np

from fastnn.nested import flatten, structure


def test_flatten_any_depth_in_order():
    a, b, c, d = (np.zeros(i + 1) for i in range(4))
    assert [x is y for x, y in zip(flatten([a, [b, (c, [d])]]), [a, b, c, d])] == [True] * 4
    assert flatten([[a, b], [c]]) == [a, b, c]
    assert flatten([]) == [] and flatten([[], [a]]) == [a]


def test_a_bare_array_is_one_item():
    a = np.zeros((2, 3))
    assert len(flatten(a)) == 1 and flatten(a)[0] is a


def test_structure_names_shapes_and_strays():
    assert structure([np.zeros((2, 3)), [np.zeros(4), 1.5]]) == [(2, 3), [(4,), "float"]]
