// Forged platform signals (from the availability review): a tenant may NOTIFY the platform's channel with anything;
// it must cost the app no database round trip, and not delay the real signals behind it.
using System.Diagnostics;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Npgsql;

namespace DbStudio.Tests.Endpoints;

public class ForgedSignalTests(TestApp app, ITestOutputHelper output)
{
    private static string Url(ProjectInfo p) => DbStudio.Tests.Integration.ConnectionSharesTests.FromUrl(p.ConnectionUrl);

    /// <summary>
    /// Any role may NOTIFY dbstudio_platform; every instance's listener thread unprotects each payload (≤ 4,000 chars) with
    /// Data Protection. A payload that names an unknown key (the magic header and a random key id) is the costliest kind.
    /// Each one made the app read the database again (Data Protection looks for the unknown key in the key ring's
    /// repository, the platform database), ~1.6 transactions and ~2–3 ms of the listener's thread per forged signal. Now a
    /// payload naming a key the platform does not have is dropped before it is opened (PlatformSignals).
    /// </summary>
    [Fact]
    public async Task A_forged_platform_signal_costs_the_app_no_database_round_trip()
    {
        var signals = app.Service<DbStudio.Core.Platform.PlatformSignals>();
        string Forged()
        {
            var bytes = new byte[2900];
            System.Security.Cryptography.RandomNumberGenerator.Fill(bytes);
            bytes[0] = 0x09; bytes[1] = 0xF0; bytes[2] = 0xC9; bytes[3] = 0xF0; // Data Protection's magic header, then a random key id
            return Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        }
        var payloads = Enumerable.Range(0, 2000).Select(_ => Forged()).ToArray();
        Assert.All(payloads, x => Assert.True(x.Length <= 4000));
        signals.Raise(payloads[0]);
        await using var monitor = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(app.Db.SuperuserConnectionString) { Database = PostgresServer.PlatformDatabase, Pooling = false }.ConnectionString);
        await monitor.OpenAsync();
        const string xacts = "SELECT (xact_commit + xact_rollback)::int8 FROM pg_stat_database WHERE datname = current_database()";
        var x0 = await ScalarAsync<long>(monitor, xacts);
        var sw = Stopwatch.StartNew();
        foreach (var x in payloads) signals.Raise(x);
        await Task.Delay(1500);
        var dbTx = await ScalarAsync<long>(monitor, xacts) - x0;
        output.WriteLine($"database transactions meanwhile (all sessions): {dbTx}");
        var perSignal = sw.Elapsed.TotalMilliseconds / payloads.Length;
        output.WriteLine($"{payloads.Length} forged signals: {sw.Elapsed.TotalMilliseconds:0} ms, {perSignal:0.000} ms each");
        // (The app's own loops run a few dozen meanwhile.)
        Assert.True(dbTx < 500, $"{payloads.Length} forged signals: {dbTx} transactions in the platform database (the key ring read again " +
                                $"for each unknown key id?), {perSignal:0.000} ms each on the listener's thread");
    }

    /// <summary>
    /// The end-to-end effect of the above: one LISTEN connection per instance carries both channels, and its handler runs
    /// on the listener's thread. A tenant sends forged payloads on dbstudio_platform (one transaction, distinct payloads, so
    /// PostgreSQL does not fold them); a real signal sent after them — a key rotation, a logout, a project deletion, from
    /// another instance — is acted on only once the listener has unprotected every forged one before it (and is ignored as
    /// stale if that takes longer than PlatformSignals.Lifetime, 2 minutes).
    /// </summary>
    [Fact]
    public async Task Forged_platform_signals_from_a_tenant_do_not_delay_real_ones()
    {
        var attackerOwner = await app.NewUserClientAsync();
        var a = await TestApp.CreateProjectAsync(attackerOwner, "signal flooder");
        // "Another instance": its own PlatformSignals (own nonces) over the same database and key ring.
        var other = new DbStudio.Core.Platform.PlatformSignals(app.Service<NpgsqlDataSource>(),
            app.Service<Microsoft.AspNetCore.DataProtection.IDataProtectionProvider>(), TimeProvider.System);
        var mine = app.Service<DbStudio.Core.Platform.PlatformSignals>();
        var marker = "avail" + Guid.NewGuid().ToString("N")[..10];
        var arrived = new System.Collections.Concurrent.ConcurrentDictionary<string, DateTime>();
        void OnSignal(string topic, string project, string detail) { if (project.StartsWith(marker)) arrived[project] = DateTime.UtcNow; }
        mine.Received += OnSignal;
        try
        {
            async Task<double> SignalAsync(string name)
            {
                var sent = DateTime.UtcNow;
                await other.PublishAsync(DbStudio.Core.Platform.PlatformSignals.Topics.Keys, marker + name);
                var sw = Stopwatch.StartNew();
                while (!arrived.ContainsKey(marker + name) && sw.Elapsed < TimeSpan.FromMinutes(4)) await Task.Delay(20);
                return arrived.TryGetValue(marker + name, out var at) ? (at - sent).TotalSeconds : double.PositiveInfinity;
            }
            var before = await SignalAsync("before");

            const int forged = 10_000; // (before the fix: a real signal 16.7 s late after 10,000, 20.8 s after 30,000)
            await using (var conn = new NpgsqlConnection(Url(a)))
            {
                await conn.OpenAsync();
                var sw = Stopwatch.StartNew();
                // The Data Protection magic header and a random "key id", then random bytes: base64url, 3,900 characters.
                await using var cmd = new NpgsqlCommand($"""
                    SET statement_timeout = 0;
                    SELECT count(pg_notify('dbstudio_platform',
                        translate(rtrim(encode('\x09f0c9f0'::bytea || gen_random_uuid()::text::bytea || decode(repeat(md5(g::text || random()::text), 45), 'hex'), 'base64'), '='),
                                  E'+/\n', '-_')))
                    FROM generate_series(1, {forged}) g
                    """, conn) { CommandTimeout = 0 };
                await cmd.ExecuteNonQueryAsync();
                output.WriteLine($"tenant sent {forged:N0} forged signals in {sw.Elapsed.TotalSeconds:0.0} s");
            }
            var after = await SignalAsync("after");
            var summary = $"a real signal from another instance was acted on after {before:0.00} s; after a tenant's {forged:N0} forged ones, after {after:0.0} s";
            output.WriteLine(summary);
            Assert.True(after < 5, summary);
        }
        finally { mine.Received -= OnSignal; }
    }


    internal static async Task<T> ScalarAsync<T>(NpgsqlConnection conn, string sql, params object[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args) cmd.Parameters.Add(new() { Value = a });
        var v = await cmd.ExecuteScalarAsync();
        return v is DBNull or null ? default! : (T)v;
    }
}
