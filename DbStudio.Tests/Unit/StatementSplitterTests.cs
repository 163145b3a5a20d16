using DbStudio.Core.Console;
using DbStudio.Core.Sql;

namespace DbStudio.Tests.Unit;

public class StatementSplitterTests
{
    private static string[] Texts(string script) => StatementSplitter.Split(script).Select(s => s.Text).ToArray();

    [Fact]
    public void Splits_at_top_level_semicolons_and_drops_empty_statements() =>
        Assert.Equal(["select 1", "select 2"], Texts("select 1; ;\n select 2;  -- done\n"));

    [Theory]
    [InlineData("select 'a;b'; select 2", "select 'a;b'")]
    [InlineData("select 'it''s;'; select 2", "select 'it''s;'")]
    [InlineData("select E'\\';x'; select 2", "select E'\\';x'")]
    [InlineData("select \"a;b\" from t; select 2", "select \"a;b\" from t")]
    [InlineData("select $$a;b$$; select 2", "select $$a;b$$")]
    [InlineData("select $fn$ $$;$$ $fn$; select 2", "select $fn$ $$;$$ $fn$")]
    [InlineData("select 1 -- x;y\n; select 2", "select 1 -- x;y")]
    [InlineData("select /* a; /* nested; */ b; */ 1; select 2", "select /* a; /* nested; */ b; */ 1")]
    public void Semicolons_inside_quotes_and_comments_do_not_split(string script, string first)
    {
        var parts = Texts(script);
        Assert.Equal(2, parts.Length);
        Assert.Equal(first, parts[0]);
        Assert.Equal("select 2", parts[1]);
    }

    [Fact]
    public void Function_bodies_stay_whole()
    {
        var script = """
            create function f() returns int language plpgsql as $$
            begin
              perform 1;
              return 2;
            end $$;
            create function g() returns int language sql begin atomic select 1; select case when true then 2 end; end;
            select f();
            """;
        var parts = Texts(script);
        Assert.Equal(3, parts.Length);
        Assert.EndsWith("end $$", parts[0]);
        Assert.EndsWith("end", parts[1]);
        Assert.Equal("select f()", parts[2]);
    }

    [Fact]
    public void Offsets_point_into_the_script()
    {
        const string script = "  select 1;\n\n  select   2";
        foreach (var s in StatementSplitter.Split(script))
            Assert.Equal(s.Text, script.Substring(s.Offset, s.Text.Length));
    }

    [Fact]
    public void A_script_of_comments_only_has_no_statements() =>
        Assert.Empty(StatementSplitter.Split("-- nothing\n/* at all */  ;"));

    [Theory]
    [InlineData("select 1", "SELECT")]
    [InlineData("create table t(x int)", "CREATE TABLE")]
    [InlineData("-- c\n create or replace function f() returns int as 'select 1' language sql", "CREATE FUNCTION")]
    [InlineData("CREATE UNIQUE INDEX i ON t(x)", "CREATE INDEX")]
    [InlineData("create materialized view v as select 1", "CREATE MATERIALIZED VIEW")]
    [InlineData("alter table t add column y int", "ALTER TABLE")]
    [InlineData("begin", "BEGIN")]
    public void Command_names_read_like_psql(string sql, string expected) =>
        Assert.Equal(expected, SqlConsole.CommandName(sql, Npgsql.StatementType.Other));

    [Fact]
    public void Assistant_blocks_are_extracted_in_order()
    {
        var blocks = AssistantSql.ExtractBlocks("Here:\n<sql>create table a(x int);</sql> and <SQL>\n insert into a values (1)\n</SQL><sql>  </sql>");
        Assert.Equal(["create table a(x int);", "insert into a values (1)"], blocks);
    }
}
