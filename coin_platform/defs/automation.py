"""Declarative automation shared by derived assets: repairs travel downstream."""

import dagster as dg

# An existing partition is rebuilt when one of its inputs was rematerialized after it, once
# nothing upstream or itself is running. A run that rebuilds input and output together
# updates the output last, so it requests nothing.
REBUILD_AFTER_INPUT_REPAIR = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
)
