// Platform signals cannot be replayed: a tenant's role can LISTEN on the platform's channel and NOTIFY what it heard;
// the payload is sealed (Data Protection), carries when it was sent and a nonce, and is acted on once, while fresh.
using DbStudio.Core.Platform;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace DbStudio.Tests.Unit;

public class PlatformSignalsTests
{
    private static readonly IDataProtectionProvider Keys = new EphemeralDataProtectionProvider();
    // Never opened: sealing and raising touch no database.
    private static readonly NpgsqlDataSource Nowhere = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1");

    private static (PlatformSignals Signals, List<string> Heard) Instance(TimeProvider clock)
    {
        var signals = new PlatformSignals(Nowhere, Keys, clock);
        var heard = new List<string>();
        signals.Received += (topic, project, detail) => heard.Add($"{topic}:{project}:{detail}");
        return (signals, heard);
    }

    [Fact]
    public void Another_instance_acts_on_a_signal_once_and_ignores_replays()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T08:00:00Z"));
        var (sender, heardBySender) = Instance(clock);
        var (receiver, heard) = Instance(clock);
        var payload = sender.Seal(PlatformSignals.Topics.Keys, "k3x9", "");

        receiver.Raise(payload);
        Assert.Equal(["keys:k3x9:"], heard);
        receiver.Raise(payload); // overheard and sent again by a tenant
        receiver.Raise(payload);
        Assert.Single(heard);

        sender.Raise(payload); // the sender's own, coming back through the channel: acted on when sent
        Assert.Empty(heardBySender);
    }

    [Fact]
    public void A_stale_signal_is_ignored_even_by_an_instance_that_never_saw_it()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T08:00:00Z"));
        var (sender, _) = Instance(clock);
        var payload = sender.Seal(PlatformSignals.Topics.Project, "k3x9", "");
        clock.Advance(PlatformSignals.Lifetime + TimeSpan.FromSeconds(1));
        var (late, heard) = Instance(clock); // e.g. started after the nonces were forgotten
        late.Raise(payload);
        Assert.Empty(heard);

        // Nonces are forgotten only after they went stale: a replay in between is still refused.
        var (receiver, heardByReceiver) = Instance(clock);
        var fresh = sender.Seal(PlatformSignals.Topics.Access, "k3x9", "");
        receiver.Raise(fresh);
        clock.Advance(TimeSpan.FromSeconds(90));
        receiver.Raise(sender.Seal(PlatformSignals.Topics.Keys, "other", "")); // prunes
        receiver.Raise(fresh);
        Assert.Equal(["access:k3x9:", "keys:other:"], heardByReceiver);
    }

    [Fact]
    public void Forged_and_foreign_payloads_do_nothing()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T08:00:00Z"));
        var (receiver, heard) = Instance(clock);
        receiver.Raise("project:k3x9:");
        receiver.Raise("");
        receiver.Raise(new string('x', 5000));
        var foreign = new PlatformSignals(Nowhere, new EphemeralDataProtectionProvider(), clock); // another deployment's keys
        receiver.Raise(foreign.Seal(PlatformSignals.Topics.Project, "k3x9", ""));
        Assert.Empty(heard);
    }
    /// <summary>Counts how often the key ring is read (from the database, in the app).</summary>
    private sealed class CountingKeyRing(IKeyManager inner) : IKeyManager
    {
        public int Reads;
        public IKey CreateNewKey(DateTimeOffset activationDate, DateTimeOffset expirationDate) => inner.CreateNewKey(activationDate, expirationDate);
        public IReadOnlyCollection<IKey> GetAllKeys() { Reads++; return inner.GetAllKeys(); }
        public CancellationToken GetCacheExpirationToken() => inner.GetCacheExpirationToken();
        public void RevokeKey(Guid keyId, string? reason = null) => inner.RevokeKey(keyId, reason);
        public void RevokeAllKeys(DateTimeOffset revocationDate, string? reason = null) => inner.RevokeAllKeys(revocationDate, reason);
    }

    /// <summary>
    /// From the availability review: a payload made up by a tenant with Data Protection's header and a random key id made
    /// the app read its key ring again (2,000 payloads: about 3,000 transactions in the platform database), on the one
    /// thread that also carries the real signals. Now such a payload is dropped unopened; the ring is read again for an
    /// unknown key at most every 30 s — and a key another instance made since is found then.
    /// </summary>
    [Fact]
    public void Made_up_key_ids_do_not_make_the_key_ring_be_read_again_and_a_new_key_is_still_found()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T08:00:00Z"));
        var dir = Directory.CreateTempSubdirectory("dbstudio-keys-");
        try
        {
            var services = new ServiceCollection();
            services.AddDataProtection().PersistKeysToFileSystem(dir).SetApplicationName("signals test");
            using var provider = services.BuildServiceProvider();
            var protection = provider.GetRequiredService<IDataProtectionProvider>();
            var ring = new CountingKeyRing(provider.GetRequiredService<IKeyManager>());
            var sender = new PlatformSignals(Nowhere, protection, clock);
            var receiver = new PlatformSignals(Nowhere, protection, clock, ring);
            var heard = new List<string>();
            receiver.Received += (topic, project, _) => heard.Add($"{topic}:{project}");

            receiver.Raise(sender.Seal(PlatformSignals.Topics.Keys, "first", ""));
            Assert.Equal(["keys:first"], heard);
            var reads = ring.Reads;
            var forged = new byte[600];
            for (var i = 0; i < 2000; i++)
            {
                System.Security.Cryptography.RandomNumberGenerator.Fill(forged);
                forged[0] = 0x09; forged[1] = 0xF0; forged[2] = 0xC9; forged[3] = 0xF0; // the header, then a made-up key id
                receiver.Raise(Convert.ToBase64String(forged).TrimEnd('=').Replace('+', '-').Replace('/', '_'));
            }
            receiver.Raise(new string('!', 40)); // not base64url at all: dropped, not thrown on the listener's thread
            receiver.Raise("CfDJ8" + new string('*', 40));
            Assert.True(ring.Reads - reads <= 1, $"the key ring was read {ring.Reads - reads} times for 2,000 made-up key ids");
            Assert.Equal(["keys:first"], heard);

            // Another instance makes a new key and signals with it: found once the ring may be read again.
            // (Data Protection dates keys by the real clock, and uses the one activated last.)
            var newKey = ring.CreateNewKey(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(90));
            var other = DataProtectionProvider.Create(dir, b => b.SetApplicationName("signals test"));
            var otherSender = new PlatformSignals(Nowhere, other, clock);
            var withNewKey = otherSender.Seal(PlatformSignals.Topics.Access, "second", "");
            var head = new byte[21];
            System.Buffers.Text.Base64Url.DecodeFromChars(withNewKey.AsSpan(0, 28), head);
            Assert.Equal(newKey.KeyId, new Guid(head.AsSpan(4, 16))); // sealed with the key the receiver has not read yet
            receiver.Raise(withNewKey);
            Assert.Equal(["keys:first"], heard); // within 30 s of the last read: not yet
            withNewKey = otherSender.Seal(PlatformSignals.Topics.Access, "second", "");
            clock.Advance(PlatformSignals.KeyRingRereadEvery);
            receiver.Raise(withNewKey);
            Assert.Equal(["keys:first", "access:second"], heard);
        }
        finally { dir.Delete(recursive: true); }
    }
}
