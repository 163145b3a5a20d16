using DbStudio.Core.Projects;
using DbStudio.Core.Sql;

namespace DbStudio.Tests.Unit;

public class NamingTests
{
    [Fact]
    public void Ids_are_short_lowercase_and_valid()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => ProjectNaming.NewId()).ToList();
        Assert.All(ids, id => Assert.True(ProjectNaming.IsValidId(id), id));
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Theory]
    [InlineData("")]
    [InlineData("1abc")]
    [InlineData("abc-def")]
    [InlineData("ABC")]
    [InlineData("abc\"; drop")]
    public void Bad_ids_are_refused(string id) => Assert.False(ProjectNaming.IsValidId(id));

    [Fact]
    public void Keys_have_their_prefixes_and_32_random_bytes()
    {
        var anon = ProjectNaming.NewAnonKey();
        var dak = ProjectNaming.NewApiKey();
        Assert.StartsWith("anon_", anon);
        Assert.StartsWith("dak_", dak);
        Assert.Equal(43, anon.Length - 5); // 32 bytes, base64url without padding
        Assert.Equal(43, dak.Length - 4);
        Assert.Matches("^[A-Za-z0-9]{32}$", ProjectNaming.NewPassword());
    }

    [Theory]
    [InlineData("a", "\"a\"")]
    [InlineData("we\"ird", "\"we\"\"ird\"")]
    [InlineData("Mixed Case", "\"Mixed Case\"")]
    public void Identifiers_are_always_quoted(string name, string quoted) => Assert.Equal(quoted, SqlText.Ident(name));

    [Fact]
    public void Literals_refuse_non_ascii_and_escape_quotes()
    {
        Assert.Equal("'it''s'", SqlText.Literal("it's"));
        Assert.Throws<ArgumentException>(() => SqlText.Literal("x\u0000"));
        Assert.Throws<ArgumentException>(() => SqlText.Literal("\u02bc"));
    }

    [Fact]
    public void Scram_verifiers_have_postgres_format() =>
        Assert.Matches(@"^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$", Scram.Verifier("pw"));
}
