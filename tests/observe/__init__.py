"""Tests of lazyrich.observe (a package, so module names like test_balance do not clash with other rooms)."""
