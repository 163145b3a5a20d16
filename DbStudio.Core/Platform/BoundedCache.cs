// A typed, size-limited in-memory cache over Microsoft.Extensions.Caching.Memory, for what the platform looks up on
// every request (keys, sessions, access settings): each entry counts 1 toward the size limit, and when the limit is
// reached the cache compacts itself (least recently used first) instead of being cleared all at once. Expiry reads the
// injected TimeProvider, as the rest of the app does, so tests can move the clock.
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Internal;

namespace DbStudio.Core.Platform;

public sealed class BoundedCache<TKey, TValue> : IDisposable where TKey : notnull
{
    private sealed class Clock(TimeProvider time) : ISystemClock
    {
        public DateTimeOffset UtcNow => time.GetUtcNow();
    }

    private readonly MemoryCache _cache;

    public BoundedCache(TimeProvider clock, long sizeLimit) =>
        _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = sizeLimit, Clock = new Clock(clock) });

    public int Count => _cache.Count;

    public bool TryGet(TKey key, out TValue value)
    {
        if (_cache.TryGetValue(key, out var found) && found is TValue v)
        {
            value = v;
            return true;
        }
        value = default!;
        return false;
    }

    /// <summary>Keeps <paramref name="value"/> for <paramref name="lifetime"/> (null: until removed or compacted away).</summary>
    public void Set(TKey key, TValue value, TimeSpan? lifetime = null)
    {
        using var entry = _cache.CreateEntry(key);
        entry.Value = value;
        entry.Size = 1;
        entry.AbsoluteExpirationRelativeToNow = lifetime;
    }

    public void Remove(TKey key) => _cache.Remove(key);

    /// <summary>Removes every entry that <paramref name="match"/> picks (a project deleted, a user's role changed).</summary>
    public void RemoveWhere(Func<TKey, TValue, bool> match)
    {
        foreach (var key in _cache.Keys.ToList())
            if (key is TKey k && _cache.TryGetValue(key, out var found) && found is TValue v && match(k, v)) _cache.Remove(key);
    }

    public void Dispose() => _cache.Dispose();
}
