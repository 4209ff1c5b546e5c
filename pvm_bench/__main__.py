from pvm_bench.cli import app

app()
