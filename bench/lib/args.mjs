// Command-line options of the benchmark scripts: `--name value`.

/** The value given after `--name` on this process's command line, or `fallback`. */
export function option(name, fallback) {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
}
