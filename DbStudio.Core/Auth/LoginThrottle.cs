// One sign-in policy for every door to a platform account (the browser form and POST /api/auth/login). It slows
// guessing without letting a stranger lock the owner out: there is no account lockout at all. Instead
//  - per (account, client address): the first FreeFailures wrong passwords cost nothing, then each one makes that
//    address wait before its next try for that account: FirstDelay, doubling, at most MaxDelay. A correct password
//    clears it. Someone guessing from elsewhere never delays the owner's own address.
//  - per client address (IPv6 by /64): at most FailuresPerAddress wrong passwords in AddressWindow, over all
//    accounts, so one address cannot spray guesses across many accounts either.
// An attempt counts as failed from the moment it starts (a success gives it back), so parallel requests cannot slip
// past the count while their passwords are being checked. State is in memory, per app instance.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace DbStudio.Core.Auth;

public sealed class LoginThrottleOptions
{
    public const string Section = "DbStudio:Login";
    /// <summary>Wrong passwords for one account from one address before any delay.</summary>
    public int FreeFailures { get; set; } = 5;
    /// <summary>The wait after the first failure beyond the free ones; it doubles with each further failure.</summary>
    public TimeSpan FirstDelay { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>The longest wait between two tries for one account from one address.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromMinutes(15);
    /// <summary>An account's failures from an address are forgotten after this long without another (0 = never).</summary>
    public TimeSpan ForgetAfter { get; set; } = TimeSpan.FromDays(1);
    /// <summary>Wrong passwords one client address may send in <see cref="AddressWindow"/>, all accounts together (0 = no limit).</summary>
    public int FailuresPerAddress { get; set; } = 30;
    public TimeSpan AddressWindow { get; set; } = TimeSpan.FromMinutes(15);
}

public sealed class LoginThrottle(TimeProvider clock, IOptions<LoginThrottleOptions> options)
{
    private const int MaxPairs = 200_000;

    private sealed class Pair
    {
        public int Failures;
        public long LastFailure;
    }

    private sealed class Address
    {
        public readonly List<long> Failures = []; // timestamps, oldest first
    }

    private readonly ConcurrentDictionary<(string Account, string Address), Pair> _pairs = new();
    private readonly ConcurrentDictionary<string, Address> _addresses = new();
    private readonly LoginThrottleOptions _o = options.Value;
    private long _lastSweep = clock.GetTimestamp();

    /// <summary>One sign-in attempt: refused (with the time to wait), or allowed and counted as failed until <see cref="Succeeded"/>.</summary>
    public sealed class Attempt
    {
        private readonly LoginThrottle? _throttle;
        private readonly (string Account, string Address) _key;
        private readonly long _at;
        private int _done;

        internal Attempt(TimeSpan retryAfter) => RetryAfter = retryAfter;

        internal Attempt(LoginThrottle throttle, (string, string) key, long at)
        {
            _throttle = throttle;
            _key = key;
            _at = at;
        }

        public bool Allowed => _throttle is not null;
        /// <summary>How long until this address may try this account again (zero when allowed).</summary>
        public TimeSpan RetryAfter { get; }

        /// <summary>The password was right: the account's failures from this address are cleared, the attempt given back.</summary>
        public void Succeeded()
        {
            if (_throttle is null || Interlocked.Exchange(ref _done, 1) == 1) return;
            _throttle.Release(_key, _at);
        }
    }

    /// <summary>Starts an attempt to sign in to <paramref name="account"/> (an email, any case) from <paramref name="address"/>.</summary>
    public Attempt Begin(IPAddress? address, string? account)
    {
        var key = (AccountKey(account), AddressKey(address));
        var now = clock.GetTimestamp();
        var pair = _pairs.GetOrAdd(key, _ => new Pair());
        var addr = _addresses.GetOrAdd(key.Item2, _ => new Address());
        lock (addr)
        lock (pair)
        {
            var wait = TimeSpan.Zero;
            if (pair.Failures > 0 && _o.ForgetAfter > TimeSpan.Zero && clock.GetElapsedTime(pair.LastFailure, now) >= _o.ForgetAfter)
                pair.Failures = 0;
            if (DelayAfter(pair.Failures) is { } delay && delay > TimeSpan.Zero)
                wait = delay - clock.GetElapsedTime(pair.LastFailure, now);
            if (_o.FailuresPerAddress > 0)
            {
                var window = _o.AddressWindow;
                addr.Failures.RemoveAll(t => clock.GetElapsedTime(t, now) >= window);
                if (addr.Failures.Count >= _o.FailuresPerAddress)
                {
                    var oldestLeaves = window - clock.GetElapsedTime(addr.Failures[addr.Failures.Count - _o.FailuresPerAddress], now);
                    if (oldestLeaves > wait) wait = oldestLeaves;
                }
            }
            if (wait > TimeSpan.Zero) return new Attempt(wait);
            pair.Failures++;
            pair.LastFailure = now;
            if (_o.FailuresPerAddress > 0) addr.Failures.Add(now);
        }
        // Old entries go every few minutes, or at most once a second while the table is over its size.
        var last = Interlocked.Read(ref _lastSweep);
        var since = clock.GetElapsedTime(last, now);
        if ((since >= TimeSpan.FromMinutes(5) || _pairs.Count > MaxPairs && since >= TimeSpan.FromSeconds(1))
            && Interlocked.CompareExchange(ref _lastSweep, now, last) == last)
            Sweep(now);
        return new Attempt(this, key, now);
    }

    /// <summary>The wait after <paramref name="failures"/> failures: none within the free ones, then doubling up to the maximum.</summary>
    public TimeSpan? DelayAfter(int failures)
    {
        var beyond = failures - _o.FreeFailures;
        if (beyond <= 0) return null;
        var delay = _o.FirstDelay * Math.Pow(2, Math.Min(beyond - 1, 40));
        return delay > _o.MaxDelay ? _o.MaxDelay : delay;
    }

    private void Release((string Account, string Address) key, long at)
    {
        _pairs.TryRemove(key, out _);
        if (_addresses.TryGetValue(key.Address, out var addr))
            lock (addr)
            {
                addr.Failures.Remove(at);
                if (addr.Failures.Count == 0) _addresses.TryRemove(KeyValuePair.Create(key.Address, addr));
            }
    }

    /// <summary>
    /// Drops what no longer holds anyone back: pairs past their delay that are forgotten, or within their free failures
    /// and older than the address window; if the table is still too big, every pair past its delay.
    /// </summary>
    private void Sweep(long now)
    {
        void Pass(bool hard)
        {
            foreach (var (key, pair) in _pairs)
                lock (pair)
                {
                    var since = clock.GetElapsedTime(pair.LastFailure, now);
                    if (DelayAfter(pair.Failures) is { } d && since < d) continue; // still holding an address back
                    var forgotten = _o.ForgetAfter > TimeSpan.Zero && since >= _o.ForgetAfter;
                    if (hard || forgotten || pair.Failures <= _o.FreeFailures && since >= _o.AddressWindow)
                        _pairs.TryRemove(KeyValuePair.Create(key, pair));
                }
        }
        Pass(hard: false);
        if (_pairs.Count > MaxPairs) Pass(hard: true);
        foreach (var (key, addr) in _addresses)
            lock (addr)
            {
                addr.Failures.RemoveAll(t => clock.GetElapsedTime(t, now) >= _o.AddressWindow);
                if (addr.Failures.Count == 0) _addresses.TryRemove(KeyValuePair.Create(key, addr));
            }
    }

    internal static string AccountKey(string? account)
    {
        var a = (account ?? "").Trim().ToUpperInvariant();
        return a.Length <= 256 ? a : a[..256];
    }

    /// <summary>IPv4 as it is (also when mapped into IPv6); IPv6 by its /64, which one subscriber usually holds whole.</summary>
    internal static string AddressKey(IPAddress? address)
    {
        if (address is null) return "-";
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return address.ToString();
        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes) + "/64";
    }
}
