// `pnpm test:py`: runs the Python test suite (pytorch/tests) with the same
// Python the CLI would use. CI must fail, never skip, when it cannot run, so
// every way of not running the tests exits non-zero with a reason.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describeTried, findPython, installHint, pythonEnv, REQUIRED_MODULES } from '@pixelflow/cli/python';
import { repoRoot } from '@pixelflow/cli/repo';

/** pytest's status when it collected no tests. */
const PYTEST_NO_TESTS = 5;

function fail(message: string): never {
  process.stderr.write(`test:py: ${message}\n`);
  process.exit(1);
}

const { python, tried } = await findPython({ modules: [...REQUIRED_MODULES, 'pytest'] });
if (!python) {
  fail(
    `no Python with PyTorch, onnx and pytest found (tried: ${describeTried(tried)}). ` +
      installHint({ pytest: true }),
  );
}

const testDir = join('pytorch', 'tests');
process.stderr.write(`test:py: ${python.executable} -m pytest -q ${testDir} (torch ${python.torchVersion})\n`);
const result = spawnSync(python.executable, ['-m', 'pytest', '-q', testDir, ...process.argv.slice(2)], {
  cwd: repoRoot,
  env: pythonEnv(),
  stdio: 'inherit',
});
if (result.error) fail(`could not run pytest: ${result.error.message}`);
if (result.signal) fail(`pytest was killed by ${result.signal}`);
if (result.status === PYTEST_NO_TESTS) fail(`pytest ran no tests in ${testDir} (exit status 5)`);
process.exit(result.status ?? 1);
