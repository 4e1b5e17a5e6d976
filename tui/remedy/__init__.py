"""One-key remediation (R15, R17-R24): from what a run shows, the study the playbook
prescribes (`plan`), and launching and supervising it (`supervise`). The dashboard's keys and
`tunetop plan` are two faces of the same code."""
