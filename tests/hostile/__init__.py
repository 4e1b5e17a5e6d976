"""The hostile-folder proof suite of issue 14 (trust model): every attack replayed by a second,
unprivileged Unix user. README.md here maps each attack of the issue to the test covering it."""
