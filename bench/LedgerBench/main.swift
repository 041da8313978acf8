// Replaced by the benchmark driver.
print("ledger-bench")
