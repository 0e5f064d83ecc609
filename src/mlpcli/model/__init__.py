"""The data model, torch-free: Config and its fields, units, shapes, the plan over ranks, results,
the tolerance rule and expectations, the memory pre-flight."""
