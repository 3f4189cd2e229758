"""`lane diag`: see, test and explain a lane from its controller. See docs/diagnostics.md."""
