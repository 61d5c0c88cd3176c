import { GenerationCache } from './generation-cache.js';

/**
 * The statement-analysis cache: exact statement text → analysis, least recently used out first (in
 * generations, see generation-cache.ts), with
 * hit/miss counters for the admin console. Texts larger than `maxTextLength` are not kept (a bulk INSERT is
 * rarely sent twice, and would crowd out the hot statements).
 */
export class AnalysisCache<V extends object> {
  readonly stats = { hits: 0, misses: 0 };
  private readonly lru: GenerationCache<string, V>;

  constructor(
    max: number,
    private readonly maxTextLength = 64 * 1024,
  ) {
    this.lru = new GenerationCache<string, V>(max);
  }

  get(text: string): V | undefined {
    const v = this.lru.get(text);
    if (v === undefined) this.stats.misses++;
    else this.stats.hits++;
    return v;
  }

  set(text: string, value: V): void {
    if (text.length <= this.maxTextLength) this.lru.set(text, value);
  }

  get size(): number {
    return this.lru.size;
  }

  clear(): void {
    this.lru.clear();
  }
}
