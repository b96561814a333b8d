// Splitting a REPL line into words the way a POSIX shell does (single quotes,
// double quotes with backslash escapes, backslash outside quotes), and quoting
// words back for display.

export class ShellWordsError extends Error {
  override name = 'ShellWordsError';
}

export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1])) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new ShellWordsError('line ends with an unfinished escape (\\)');
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new ShellWordsError(`unmatched ${quote} in line`);
  if (inWord) words.push(word);
  return words;
}

/** Quote a word so that splitWords (or a shell) reads it back unchanged. */
export function quoteWord(word: string): string {
  if (word !== '' && /^[\w@%+=:,./[\]-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export function quoteWords(words: readonly string[]): string {
  return words.map(quoteWord).join(' ');
}
