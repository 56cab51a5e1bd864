from compat.entry import run

run()
