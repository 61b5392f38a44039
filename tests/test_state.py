"""dashboard/state.py: the selected run shared by the pages, and the view in the URL."""

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import state


def view_app():
    """A page that keeps a select box, a multiselect and a toggle in the URL."""
    import streamlit as st

    from dashboard import state

    options = ["a", "b", "c"]
    state.seed_from_url("pick", "p", state.one_of(options))
    state.seed_from_url("many", "m", state.one_of(options), many=True)
    state.seed_from_url("on", "on", state.flag)
    state.seed_from_url("w", "w", state.number_in(0.0, 0.99))
    st.session_state.setdefault("w", 0.5)
    pick = st.selectbox("pick", options, key="pick")
    many = st.multiselect("many", options, key="many")
    on = st.toggle("on", key="on")
    w = st.slider("w", 0.0, 0.99, key="w")
    if st.button("select", key="select"):
        state.select_run(pick)
    st.write(f"selected={state.selected_run()}")
    state.to_url(p=None if pick == "a" else pick, m=many, on=on, w=None if w == 0.5 else w)


def run_view(**query) -> AppTest:
    at = AppTest.from_function(view_app)
    at.query_params.update(query)
    return at.run()


def test_the_url_seeds_widgets_once_and_follows_them():
    at = run_view(p="b", m=["c", "x", "a"], on="1", w="0.25")
    assert at.selectbox(key="pick").value == "b"
    assert at.multiselect(key="many").value == ["c", "a"]  # an unknown option is dropped
    assert at.toggle(key="on").value is True and at.slider(key="w").value == 0.25
    at.selectbox(key="pick").set_value("c").run()  # the widget wins over the URL from now on
    assert at.selectbox(key="pick").value == "c"
    assert at.query_params == {"p": "c", "m": ["c", "a"], "on": "1", "w": "0.25"}
    at.toggle(key="on").set_value(False).run()
    at.multiselect(key="many").set_value([]).run()
    at.selectbox(key="pick").set_value("a").run()
    at.slider(key="w").set_value(0.5).run()
    assert at.query_params == {}  # defaults and empty values leave the URL


def test_bad_url_values_are_ignored():
    at = run_view(p="zzz", w="7", on="no")
    assert at.selectbox(key="pick").value == "a" and at.slider(key="w").value == 0.5
    assert at.toggle(key="on").value is False and not at.exception


def test_selected_run_is_shared_through_the_session():
    at = run_view(p="c")
    assert "selected=None" in at.markdown[0].value
    at.button(key="select").click().run()
    assert at.session_state[state.SELECTED_RUN] == "c"
    assert "selected=c" in at.markdown[0].value


def test_parsers():
    assert state.one_of(["x"])("x") == "x"
    with pytest.raises(ValueError):
        state.one_of(["x"])("y")
    assert state.number_in(0, 1)("0.5") == 0.5
    for bad in ("2", "abc"):
        with pytest.raises(ValueError):
            state.number_in(0, 1)(bad)
    assert state.flag("1") and not state.flag("0")


def handover_app():
    """One page hands a weights label to the next, which reads the URL's view at once."""
    import streamlit as st

    from dashboard import state

    if st.button("hand", key="hand"):
        state.hand_over_weights("step 5")
    st.write(f"taken={state.take_weights()}")
    st.write(f"url={sorted(state.url_values('a', 'b').items())}")


def test_weights_are_handed_over_once_and_url_values_reads_only_what_is_named():
    at = AppTest.from_function(handover_app)
    at.query_params.update(a="1", other="x")
    at.run()
    assert "taken=None" in at.markdown[0].value
    assert "url=[('a', '1')]" in at.markdown[1].value
    at.button(key="hand").click().run()
    assert "taken=step 5" in at.markdown[0].value
    at.run()
    assert "taken=None" in at.markdown[0].value  # read once, then gone
