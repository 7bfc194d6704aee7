//! ExecGov's black-box tests: one test binary, one module per feature.
