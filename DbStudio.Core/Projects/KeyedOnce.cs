// A value computed once per key and shared by every caller that asks while it is computed (connection strings of a
// project's logins); a failure is not kept, so the next caller tries again.
using System.Collections.Concurrent;

namespace DbStudio.Core.Projects;

internal sealed class KeyedOnce<T>
{
    private readonly ConcurrentDictionary<string, Lazy<Task<T>>> _values = new();

    public async Task<T> GetAsync(string key, Func<string, Task<T>> compute, CancellationToken ct)
    {
        var lazy = _values.GetOrAdd(key, k => new Lazy<Task<T>>(() => compute(k)));
        try { return await lazy.Value.WaitAsync(ct); }
        catch (Exception) when (lazy.Value.IsFaulted)
        {
            _values.TryRemove(new KeyValuePair<string, Lazy<Task<T>>>(key, lazy));
            throw;
        }
    }

    public void Forget(string key) => _values.TryRemove(key, out _);
}
