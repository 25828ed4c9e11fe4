"""An asset whose input is too thin skips with a reason: the run succeeds and says why."""

import dagster as dg

from sentinance_assets.defs.skips import (
    ENOUGH_INPUT,
    SKIPPED,
    ThinInputError,
    enough_input,
    enough_input_spec,
    skip_from,
    skips_in,
)

KEY = dg.AssetKey(["ml", "thin"])


def _asset(rows: int) -> dg.AssetsDefinition:
    @dg.asset(
        key=KEY,
        check_specs=[
            enough_input_spec(KEY, "3 rows"),
            dg.AssetCheckSpec("other", asset=KEY),
        ],
    )
    def thin() -> dg.MaterializeResult:
        try:
            if rows < 3:
                raise ThinInputError(f"needs 3 rows, has {rows}", needs="3 rows", has=str(rows))
        except ThinInputError as exc:
            return skip_from(KEY, exc, checks=["other"])
        return dg.MaterializeResult(
            check_results=[
                enough_input(KEY, rows=rows),
                dg.AssetCheckResult(check_name="other", passed=True),
            ]
        )

    return thin


def test_thin_input_skips_with_reason_and_warn_checks() -> None:
    result = dg.materialize([_asset(1)])
    assert result.success
    (event,) = result.get_asset_materialization_events()
    mat = event.step_materialization_data.materialization
    assert mat.metadata[SKIPPED].value == "needs 3 rows, has 1"
    assert mat.metadata["has"].value == "1"
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {ENOUGH_INPUT, "other"}
    assert all(not c.passed for c in checks.values())
    assert all(c.severity == dg.AssetCheckSeverity.WARN for c in checks.values())
    assert skips_in(result.all_events) == [("ml/thin", "needs 3 rows, has 1")]


def test_enough_input_passes_and_is_not_listed() -> None:
    result = dg.materialize([_asset(5)])
    assert result.success
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True, True]
    assert skips_in(result.all_events) == []
