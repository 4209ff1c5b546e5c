from pvm_bench.cli.main import app

app()
